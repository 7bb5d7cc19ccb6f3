"""The pgstac item index answers as the DuckDB one over the same publication (paging included)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from publish.ingest import ingest
from services.api.store import DuckDBStore
from services.raster.index import DuckDBItemIndex, IndexUnavailableError
from services.raster.pgstac_index import PgstacItemIndex
from services.raster.publication import NotFoundError
from services.raster.timeline import parse_datetime
from tests.pgstac_cluster import pgstac_dsn  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def indexes(root: Path, pgstac_dsn: str) -> Iterator[tuple[DuckDBItemIndex, PgstacItemIndex]]:  # noqa: F811
    ingest(root, pgstac_dsn)
    store = DuckDBStore.open(root)
    with PgstacItemIndex(pgstac_dsn, page_size=5) as pgstac:
        yield DuckDBItemIndex(store), pgstac
    store.close()


def test_same_items_periods_extent_and_counts(
    indexes: tuple[DuckDBItemIndex, PgstacItemIndex], ids: dict[str, str]
) -> None:
    duck, pg = indexes
    for short, asset in (("gangrigab", "velocity"), ("hma", "velocity"), ("muli", "displacement")):
        cid = ids[short]
        assets = [asset]
        for period in (None, parse_datetime("2023-07"), parse_datetime("2019/2020")):
            assert pg.search(cid, assets, period) == duck.search(cid, assets, period), (short, period)
        assert pg.periods(cid, assets) == duck.periods(cid, assets)
        assert pg.extent(cid, assets) == pytest.approx(duck.extent(cid, assets))
        assert pg.asset_counts(cid, assets) == duck.asset_counts(cid, assets)
    assert len(pg.search(ids["gangrigab"], ["velocity"])) == 12  # more than one page of 5


def test_unknown_collection_is_not_found(indexes: tuple[DuckDBItemIndex, PgstacItemIndex]) -> None:
    with pytest.raises(NotFoundError):
        indexes[1].search("no-such-collection", [])


def test_unreachable_database_is_unavailable() -> None:
    with PgstacItemIndex("postgresql://nobody@127.0.0.1:1/none", max_connections=1) as index:
        index.pool.timeout = 1
        with pytest.raises(IndexUnavailableError):
            index.search("any", [])
