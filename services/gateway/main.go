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
	cfg := Config{Backends: map[string]string{}, ShutdownTimeout: 15 * time.Second}
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
	return cfg, nil
}

func run() error {
	cfg, err := config()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
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
	// The one line callers (make run, tests) wait for.
	fmt.Printf("listening on http://%s\n", listener.Addr())
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
