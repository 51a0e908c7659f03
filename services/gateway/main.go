package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		slog.Error("gateway failed", "error", err)
		os.Exit(1)
	}
}

// env returns the variable's value, or def when it is unset or empty.
func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// config reads flags, each defaulting to its COMMERCE_GATEWAY_* environment variable.
func config() (Config, error) {
	timeout, err := time.ParseDuration(env("COMMERCE_GATEWAY_TIMEOUT", "10s"))
	if err != nil {
		return Config{}, fmt.Errorf("COMMERCE_GATEWAY_TIMEOUT: %w", err)
	}
	maxBody, err := strconv.ParseInt(env("COMMERCE_GATEWAY_MAX_BODY_BYTES", "1048576"), 10, 64)
	if err != nil || maxBody <= 0 {
		return Config{}, fmt.Errorf("COMMERCE_GATEWAY_MAX_BODY_BYTES: want a positive integer")
	}
	ratio, err := strconv.ParseFloat(env("COMMERCE_GATEWAY_SAMPLE_RATIO", "1"), 64)
	if err != nil || ratio < 0 || ratio > 1 {
		return Config{}, fmt.Errorf("COMMERCE_GATEWAY_SAMPLE_RATIO: want a number from 0 to 1")
	}
	cfg := Config{Backends: map[string]string{}, ShutdownTimeout: 15 * time.Second}
	// The OTLP endpoint: ours, else the standard OTel variables (the collector component sets
	// OTEL_EXPORTER_OTLP_ENDPOINT). Neither set and no Zipkin endpoint: nothing is exported.
	otlp := env("COMMERCE_GATEWAY_OTLP_ENDPOINT", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")))
	flag.StringVar(&cfg.Telemetry.OTLPEndpoint, "otlp-endpoint", otlp, "OTLP/gRPC trace collector URL, e.g. http://otel-collector:4317")
	flag.StringVar(&cfg.Telemetry.ZipkinEndpoint, "zipkin-endpoint", os.Getenv("COMMERCE_GATEWAY_ZIPKIN_ENDPOINT"), "Zipkin v2 spans URL, e.g. http://127.0.0.1:9411/api/v2/spans")
	flag.Float64Var(&cfg.Telemetry.SampleRatio, "sample-ratio", ratio, "share of new traces sampled (a caller's sampled trace is always continued)")
	flag.StringVar(&cfg.Telemetry.ServiceVersion, "service-version", env("COMMERCE_GATEWAY_SERVICE_VERSION", "dev"), "service.version of the spans")
	flag.StringVar(&cfg.Addr, "addr", env("COMMERCE_GATEWAY_ADDR", "127.0.0.1:8080"), "listen address")
	flag.StringVar(&cfg.OpenAPIPath, "openapi", env("COMMERCE_GATEWAY_OPENAPI", "gen/openapi/commerce.swagger.json"), "OpenAPI spec to serve")
	flag.DurationVar(&cfg.RequestTimeout, "timeout", timeout, "default deadline of a call that sets none")
	flag.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", maxBody, "largest request body accepted")
	addrs := map[string]*string{}
	for name := range services {
		key := "COMMERCE_GATEWAY_" + strings.ToUpper(name) + "_ADDR"
		addrs[name] = flag.String(name, os.Getenv(key), "host:port of the "+name+" service ($"+key+")")
	}
	flag.Parse()
	for name, addr := range addrs {
		cfg.Backends[name] = *addr
	}
	if cfg.Telemetry.SampleRatio < 0 || cfg.Telemetry.SampleRatio > 1 {
		return Config{}, fmt.Errorf("-sample-ratio: want a number from 0 to 1")
	}
	if err := checkEndpoint("OTLP endpoint", cfg.Telemetry.OTLPEndpoint); err != nil {
		return Config{}, err
	}
	if err := checkEndpoint("Zipkin endpoint", cfg.Telemetry.ZipkinEndpoint); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func run() error {
	cfg, err := config()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, func(addr net.Addr) {
		// The one line callers (make run, tests) wait for.
		fmt.Printf("listening on http://%s\n", addr)
	})
}

// serve runs the gateway until ctx ends (SIGINT/SIGTERM), then drains the requests in flight
// and, last, flushes their spans to the exporters.
func serve(ctx context.Context, cfg Config, listening func(net.Addr)) error {
	provider, shutdownTracing, err := newTracerProvider(ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	// Runs last, after the drain: the spans of the requests it let finish are exported too.
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(flushCtx); err != nil {
			slog.Warn("flushing spans failed", "error", err)
		}
	}()
	cfg.TracerProvider = provider
	gw, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer gw.Close()
	listener, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	server := &http.Server{
		Handler:           gw.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	listening(listener.Addr())
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	slog.Info("draining", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
