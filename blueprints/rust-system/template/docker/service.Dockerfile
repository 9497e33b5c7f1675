{% assign binary = service.name %}
{% assign port = 8081 | plus: service.index %}
{% assign admin_port = port | plus: 1000 %}
{% assign dockerfile = "services/" | append: service.name | append: "/Dockerfile" %}
{% assign what = "the " | append: service.name | append: " service" %}
{% assign summary = "The " | append: service.name | append: " service of " | append: name | append: ": " | append: description %}
{% comment %}
  gateway.Dockerfile is this file with the assignments above made for the gateway;
  keep the two identical below this line (tests/deploy_docker.rs checks it).
{% endcomment %}
# The image of {{ what }}. The build context is the repository root, because the
# binary builds with the whole workspace:
#
#   docker build -f {{ dockerfile }} -t {{ name }}-{{ binary }} .
#
# Stages: `chef` (the toolchain and cargo-chef), `planner` (the recipe: every manifest and
# the lockfile), `builder` (the binary's dependencies in a layer of their own, cached
# until the recipe changes, then the binary) and a distroless runtime image with nothing
# but the binary, running as a non-root user.

# The toolchain pinned in rust-toolchain.toml: change both together.
FROM rust:1.95.0-slim-bookworm AS chef
{% if messaging.broker == "kafka" %}
# librdkafka, the Kafka client, is compiled from its bundled C and C++ sources.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 g++=4:12.2.0-3 \
    && rm -rf /var/lib/apt/lists/*
{% endif %}
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /app

FROM chef AS planner
COPY . .
# The recipe holds every Cargo.toml of the workspace and the Cargo.lock. A repository
# without a committed Cargo.lock gets one resolved here (commit yours to pin every
# transitive dependency for every build).
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Compiles only the dependencies of this binary. The workspace's own crates, and build
# scripts such as the proto compilation of gRPC services, are empty stand-ins here; the
# real ones are built below, after the sources are copied.
RUN cargo chef cook --release --locked --package {{ binary }} --recipe-path recipe.json
COPY . .
# --locked: build with exactly the versions the dependency layer was cooked with, the
# planner's Cargo.lock (the recipe's copy masks the workspace crates' versions).
COPY --from=planner /app/Cargo.lock Cargo.lock
RUN cargo build --release --locked --package {{ binary }} --bin {{ binary }}

# Runtime: glibc and libgcc as in Debian 12 (the builder's release), no shell, no package
# manager. Pinned by digest, since distroless tags move; to take its security updates,
# bump it with `docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot`.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
LABEL org.opencontainers.image.title="{{ name }}-{{ binary }}" \
      org.opencontainers.image.description={{ summary | dockerfile_str }} \
{% if owner != "" %}
      org.opencontainers.image.authors={{ owner | dockerfile_str }} \
{% endif %}
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot" \
      org.opencontainers.image.base.digest="sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f"
COPY --from=builder /app/target/release/{{ binary }} /usr/local/bin/{{ binary }}
{% if auth.mtls %}
# Listen on every interface of the container, on the binary's default port, and serve
# /healthz, /readyz and /metrics in plain HTTP on the admin port. The certificates are
# mounted at run time (TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE), never built in.
ENV HOST=0.0.0.0 \
    PORT={{ port }} \
    ADMIN_PORT={{ admin_port }}
EXPOSE {{ port }} {{ admin_port }}
{% else %}
# Listen on every interface of the container, on the binary's default port.
ENV HOST=0.0.0.0 \
    PORT={{ port }}
EXPOSE {{ port }}
{% endif %}
# The distroless `nonroot` user, by number so that Kubernetes can verify runAsNonRoot.
USER 65532:65532
# The image has no shell and no curl: the binary probes its own /healthz{% if auth.mtls %} (admin port){% endif %}.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/{{ binary }}", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/{{ binary }}"]
