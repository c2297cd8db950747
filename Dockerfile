FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/au-relay /au-relay

FROM debian:bookworm-slim
# poppler-utils: the pages of scanned PDFs (pdfinfo, pdfimages, pdftoppm) for insurers' scan uploads.
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates poppler-utils && rm -rf /var/lib/apt/lists/*
COPY --from=build /au-relay /usr/local/bin/au-relay
USER 10001
ENV AU_RELAY_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["au-relay"]
CMD ["serve"]
