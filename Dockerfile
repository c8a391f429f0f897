# euccs-gateway: slim, non-root image. Build: docker build -t euccs-gateway .
FROM python:3.11-slim AS build
ENV UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY protocols protocols
COPY adapters adapters
COPY gateway gateway
COPY certs certs
# postgres: the PostgreSQL journal and [cluster] (several instances of one gateway).
RUN uv sync --frozen --no-dev --no-editable --extra fast --extra postgres

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /var/lib/euccs euccs
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
USER euccs
WORKDIR /var/lib/euccs
HEALTHCHECK --interval=30s --timeout=5s CMD ["euccs-gw", "config", "check", "/etc/euccs/gateway.toml"]
ENTRYPOINT ["euccs-gw"]
VOLUME ["/var/lib/euccs"]
CMD ["run", "-c", "/etc/euccs/gateway.toml", "--state-dir", "/var/lib/euccs/state"]
