# Durable: one image with both programs, the API (default) and the worker.
#
#   docker build -t durable .
#   docker run durable               # the API
#   docker run --entrypoint /usr/local/bin/worker durable
#
# Both read their configuration from the environment (DATABASE_URL, …) and
# apply database migrations at start-up.

FROM golang:1.26-bookworm AS build
WORKDIR /src

# Dependencies first, so that they stay cached while the code changes.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/api ./cmd/worker

# Static binaries, CA certificates and time zones; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/api /out/worker /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/api"]
