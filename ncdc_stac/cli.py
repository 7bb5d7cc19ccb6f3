"""The ``ncdc-stac`` command line: a thin shell over catalog/, publish/ and services/."""

from __future__ import annotations

import logging.config
import sys
from pathlib import Path
from typing import Any, Literal, cast

import click
from rich.console import Console

from catalog.collection import create_collection
from catalog.record import RecordError, load_record
from publish.storage import write_json_atomic

err_console = Console(stderr=True, soft_wrap=True)


def _report_warnings(source: Path, warnings: list[dict[str, str]]) -> None:
    for warning in warnings:
        err_console.print(f"[yellow]warning[/] {source}: {warning['field']}: {warning['message']}", highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ncdc-stac")
def main() -> None:
    """STAC catalog and cloud-native publisher for the data center's datasets."""


@main.command()
@click.argument("records", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory that receives <collection-id>/collection.json per record.",
)
def convert(records: tuple[Path, ...], out: Path) -> None:
    """Convert metadata RECORDS (JSON) into STAC Collections.

    A record that fails is reported with its file and field and nothing is written for it;
    the others still convert. Exit code 1 if any record failed.
    """
    failed = 0
    for source in records:
        try:
            collection = create_collection(load_record(source))
        except RecordError as err:
            failed += 1
            err_console.print(f"[red]error[/] {err}", highlight=False)
            continue
        target = out / collection.id / "collection.json"
        collection.set_self_href(None)
        changed = write_json_atomic(target, collection.to_dict(include_self_link=False))
        _report_warnings(source, collection.extra_fields.get("ncdc:quality_warnings", []))
        click.echo(f"{'wrote' if changed else 'unchanged'} {target}")
    if failed:
        err_console.print(f"[red]{failed} of {len(records)} record(s) failed[/]")
        sys.exit(1)


@main.command()
@click.option(
    "--out",
    default=Path("samples"),
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write into (a sub-folder per dataset).",
)
@click.option(
    "--scale",
    type=click.Choice(["small", "full"]),
    default="small",
    show_default=True,
    help="small: quick to make and publish; full: the size and resolution of the real files.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="Only this dataset (repeat for several; default: all): cpec-deformation, muli-subsidence, "
    "gangrigab-velocity, hma-glacier-velocity.",
)
def samples(out: Path, scale: str, datasets: tuple[str, ...]) -> None:
    """Generate SYNTHETIC sample inputs in the formats the records describe (not real data)."""
    from rich.progress import Progress, SpinnerColumn, TimeElapsedColumn

    from publish.samples import checked_datasets, generate_samples

    try:
        checked_datasets(scale, datasets or None)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--dataset'") from None

    with Progress(SpinnerColumn(), "{task.description}", TimeElapsedColumn(), console=err_console) as progress:
        task = progress.add_task("generating samples", total=None)
        folders = generate_samples(
            out,
            cast(Literal["small", "full"], scale),
            list(datasets) or None,
            progress=lambda msg: progress.update(task, description=msg),
        )
    for name, folder in folders.items():
        click.echo(f"{name}: {folder}")


@main.command()
@click.argument("record", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--data", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True), help="Data files."
)
@click.option("--root", help="Publication root, a folder or s3://bucket/prefix [NCDC_STAC_ROOT].")
@click.option("--recipe", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="Default: beside RECORD.")
@click.option("--workers", type=click.IntRange(min=1), help="Parallel workers [NCDC_STAC_WORKERS; default: cores].")
@click.option(
    "--scheduler",
    help="Dask scheduler, tcp://host:port, whose workers convert the files [NCDC_STAC_SCHEDULER; default: local].",
)
@click.option("--prune", is_flag=True, help="Remove published items whose input file is gone.")
def publish(
    record: Path,
    data: Path,
    root: str | None,
    recipe: Path | None,
    workers: int | None,
    scheduler: str | None,
    prune: bool,
) -> None:
    """Publish RECORD's data files: COGs, GeoParquet + FlatGeobuf, Items, stac-geoparquet, static catalog.

    Unchanged inputs are not converted again; every file is replaced atomically. Exit code 1 when
    any file failed (the others are published, the failed ones keep their previous publication).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ncdc_stac.settings import Settings
    from publish.pipeline import publish_collection
    from publish.recipe import RecipeError

    settings = Settings(root=root) if root else Settings()
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err_console) as progress:
            task = progress.add_task(f"publishing {record.name}", total=None)
            summary = publish_collection(
                record,
                data,
                settings.root,
                recipe_path=recipe,
                workers=workers or settings.workers,
                prune=prune,
                on_planned=lambda total: progress.update(task, total=total),
                on_done=lambda item_id: progress.advance(task),
                settings=settings,
                scheduler=scheduler or settings.scheduler,
            )
    except (RecordError, RecipeError) as err:
        err_console.print(f"[red]error[/] {err}", highlight=False)
        sys.exit(1)
    for error in summary.errors:
        err_console.print(f"[red]error[/] {error}", highlight=False)
    nothing = summary.converted == 0 and summary.written_files == 0 and summary.removed == 0
    click.echo(
        f"{summary.collection_id}: {summary.files} files, {summary.items} items "
        f"({summary.converted} converted, {summary.unchanged} unchanged, {summary.removed} removed), "
        f"{summary.written_files} files written, {summary.bytes / 1e6:.1f} MB, {summary.seconds:.1f} s"
        + (f", {len(summary.errors)} error(s) above" if summary.errors else " - nothing changed" if nothing else "")
    )
    if summary.errors:
        sys.exit(1)


@main.command()
@click.option("--root", help="Publication root, a folder or s3://bucket/prefix [NCDC_STAC_ROOT].")
@click.option("--backend", type=click.Choice(["duckdb", "pgstac"]), help="Search backend [NCDC_STAC_BACKEND].")
@click.option("--dsn", help="PostgreSQL DSN of the pgstac backend [NCDC_STAC_DSN].")
@click.option("--host", help="Interface to listen on [NCDC_STAC_HOST, default 127.0.0.1].")
@click.option("--port", type=int, help="Port [NCDC_STAC_PORT, default 8000].")
@click.option("--log-format", type=click.Choice(["json", "text"]), help="Logs on stderr [NCDC_STAC_LOG_FORMAT, json].")
@click.option(
    "--only",
    "service",
    type=click.Choice(["stac", "raster"]),
    help="One side of a deployment behind a proxy: the STAC API + viewer + files, or the tiles [NCDC_STAC_SERVICE].",
)
def serve(
    root: str | None,
    backend: str | None,
    dsn: str | None,
    host: str | None,
    port: int | None,
    log_format: str | None,
    service: str | None,
) -> None:
    """Serve the viewer at /, the STAC API at /stac, tiles at /raster and the published files at /files.

    Settings come from NCDC_STAC_* environment variables; options override them.
    """
    import uvicorn

    from ncdc_stac.settings import Settings
    from services.ops import logging_config

    overrides: dict[str, Any] = {
        **{"root": root, "backend": backend, "dsn": dsn, "host": host, "port": port},
        "log_format": log_format,
        "service": service,
    }
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    log_config = logging_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(log_config)
    logging.captureWarnings(True)  # library warnings as log records too
    from services.app import create_app  # after the logging setup: libraries log while they are imported

    if isinstance(settings.root, Path) and not settings.root.is_dir():
        err_console.print(f"[red]error[/] {settings.root}: no publication here (run `ncdc-stac publish` first)")
        sys.exit(1)
    app = create_app(settings)
    click.echo(f"serving {settings.root} ({settings.backend}) on http://{settings.host}:{settings.port}/stac")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        log_config=log_config,
        log_level=settings.log_level,
        access_log=False,  # services.ops logs each request, with its duration and request id
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )


@main.command()
@click.option("--root", help="Publication root, a folder or s3://bucket/prefix [NCDC_STAC_ROOT].")
@click.option("--dsn", help="PostgreSQL DSN [NCDC_STAC_DSN].")
@click.option("--collection", "collections", multiple=True, help="Only these collection ids (default: all).")
@click.option("--migrate", is_flag=True, help="Install or upgrade the pgstac schema first.")
@click.option("--prune", is_flag=True, help="Delete items that are no longer published.")
def ingest(root: str | None, dsn: str | None, collections: tuple[str, ...], migrate: bool, prune: bool) -> None:
    """Load published collections and items into pgstac (upsert: running it again is harmless)."""
    from ncdc_stac.settings import Settings
    from publish.ingest import IngestError
    from publish.ingest import ingest as load

    settings = Settings(root=root) if root else Settings()
    target = dsn or (settings.dsn.get_secret_value() if settings.dsn else None)
    if not target:
        raise click.UsageError("no database: give --dsn or set NCDC_STAC_DSN")
    source = settings.publication_root()
    try:
        with err_console.status("loading into pgstac"):
            summary = load(source, target, collections=collections or None, migrate=migrate, prune=prune)
    except IngestError as err:
        err_console.print(f"[red]error[/] {err}", highlight=False)
        sys.exit(1)
    for entry in summary.collections:
        click.echo(f"{entry.id}: {entry.items} items" + (f", {entry.pruned} pruned" if entry.pruned else ""))
    click.echo(f"{summary.items} items in {len(summary.collections)} collections (pgstac {summary.pgstac_version})")
