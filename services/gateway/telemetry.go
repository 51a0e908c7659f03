package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/stats"
)

// serviceName is the gateway's service.name resource attribute.
const serviceName = "gateway"

// TelemetryConfig says where the gateway's spans go. With no exporter configured the gateway
// records nothing but still continues the caller's trace context to the services.
type TelemetryConfig struct {
	ServiceVersion string
	OTLPEndpoint   string  // OTLP/gRPC collector, e.g. http://otel-collector:4317
	ZipkinEndpoint string  // Zipkin v2 JSON, e.g. http://127.0.0.1:9411/api/v2/spans
	SampleRatio    float64 // of new traces; a sampled caller's trace is always continued
}

// propagator is the one way trace context enters (traceparent/tracestate headers) and leaves
// (gRPC metadata) the gateway. Baggage is deliberately not propagated: it is caller-controlled.
var propagator = propagation.TraceContext{}

// checkEndpoint accepts an absolute http(s) URL.
func checkEndpoint(name, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: want an http(s) URL, got %q", name, raw)
	}
	return nil
}

// newTracerProvider builds the SDK tracer provider with the configured exporters behind batch
// span processors. Its shutdown flushes them. Without exporters it returns a no-op provider,
// which still carries an incoming traceparent through to the services.
func newTracerProvider(ctx context.Context, cfg TelemetryConfig) (trace.TracerProvider, func(context.Context) error, error) {
	var exporters []sdktrace.SpanExporter
	if cfg.OTLPEndpoint != "" {
		exporter, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint))
		if err != nil {
			return nil, nil, fmt.Errorf("OTLP exporter: %w", err)
		}
		exporters = append(exporters, exporter)
	}
	if cfg.ZipkinEndpoint != "" {
		exporter, err := zipkin.New(cfg.ZipkinEndpoint)
		if err != nil {
			return nil, nil, fmt.Errorf("Zipkin exporter: %w", err)
		}
		exporters = append(exporters, exporter)
	}
	if len(exporters) == 0 {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	res, err := newResource(ctx, cfg.ServiceVersion)
	if err != nil {
		return nil, nil, err
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	}
	for _, exporter := range exporters {
		opts = append(opts, sdktrace.WithBatcher(exporter))
	}
	provider := sdktrace.NewTracerProvider(opts...)
	return provider, provider.Shutdown, nil
}

// newResource: service.name and service.version, then OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME (the pod name, namespace, ... set by the manifests).
func newResource(ctx context.Context, version string) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceVersion(version)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if errors.Is(err, resource.ErrPartialResource) {
		slog.Warn("some resource attributes could not be read", "error", err)
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	return res, nil
}

// probe reports a liveness/readiness request: those are not traced (kubelet calls them every
// few seconds, and /readyz's health checks would each start a trace of their own).
func probe(r *http.Request) bool {
	return r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
}

// traced wraps the gateway's handler in a server span per request: it continues the caller's
// traceparent or starts a trace, and is named by route once the request is routed. The span's
// attributes are otelhttp's (method, path, status, peer, user agent): never the query string,
// the body, or another header.
func traced(next http.Handler, provider trace.TracerProvider) http.Handler {
	handler := otelhttp.NewHandler(next, serviceName,
		otelhttp.WithTracerProvider(provider),
		otelhttp.WithPropagators(propagator),
		otelhttp.WithSpanNameFormatter(spanName),
		otelhttp.WithFilter(func(r *http.Request) bool { return !probe(r) }),
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, new(routeName))))
	})
}

// clientTracing gives every call to a service a client span, child of the request's span, and
// injects the trace context into the call's metadata (the only path by which traceparent
// reaches the services).
func clientTracing(provider trace.TracerProvider) stats.Handler {
	return otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(provider),
		otelgrpc.WithPropagators(propagator),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	)
}

type routeKey struct{}

// routeName holds the request's route ("POST /v1/{parent=tenants/*}/checkouts") once known.
type routeName struct{ name string }

// spanName is the route when the request was routed, else the bare method (an unknown path,
// or a request refused before routing): never the raw path, which has ids in it.
func spanName(_ string, r *http.Request) string {
	if route, ok := r.Context().Value(routeKey{}).(*routeName); ok && route.name != "" {
		return route.name
	}
	return r.Method
}

// nameRoute names the request's span after its route and records http.route.
func nameRoute(ctx context.Context, method, route string) {
	name := method + " " + route
	if holder, ok := ctx.Value(routeKey{}).(*routeName); ok {
		holder.name = name
	}
	span := trace.SpanFromContext(ctx)
	span.SetName(name)
	span.SetAttributes(semconv.HTTPRoute(route))
}

// routeSpans names the span of a request grpc-gateway routed, after the binding's pattern.
func routeSpans(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if pattern, ok := runtime.HTTPPattern(r.Context()); ok {
			nameRoute(r.Context(), r.Method, pattern.String())
		}
		next(w, r, params)
	}
}

// routeServeMux names the span of a request the standard mux routed ("GET /openapi.json");
// the catch-all "/" is grpc-gateway's, named by routeSpans.
func routeServeMux(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if method, route, ok := strings.Cut(r.Pattern, " "); ok && route != "/" {
			nameRoute(r.Context(), method, route)
		}
	})
}
