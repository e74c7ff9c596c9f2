# The flux-reporter image: a static-ish Rust binary on distroless (glibc), as non-root.
#   docker build -t ghcr.io/flux-reporter/flux-reporter:v0.1.0 .
# (Not built in CI: the project's machines have no container runtime.)
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p flux-reporter && \
    install -D target/release/flux-reporter /out/flux-reporter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/flux-reporter /usr/local/bin/flux-reporter
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/flux-reporter"]
CMD ["run"]
