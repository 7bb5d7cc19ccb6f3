# One image for every ncdc-stac service; the command chooses it (see docker-compose.yml):
#   ncdc-stac serve --only stac | --only raster | (everything)    ncdc-stac publish / ingest / samples
# Python wheels bring their own GDAL, PROJ and DuckDB extensions: no system libraries, nothing downloaded at run time.

FROM node:20-bookworm-slim AS web
WORKDIR /app/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NCDC_STAC_HOST=0.0.0.0 \
    NCDC_STAC_PORT=8000
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY catalog catalog
COPY publish publish
COPY services services
COPY ncdc_stac ncdc_stac
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv pip install --system --no-cache -c constraints.txt -e . \
 && pip uninstall -y uv
COPY records records
COPY deploy deploy
COPY --from=web /app/web/node_modules web/node_modules
RUN useradd --system --uid 10001 --home-dir /srv --create-home ncdc
USER ncdc
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
ENTRYPOINT ["ncdc-stac"]
CMD ["serve"]
