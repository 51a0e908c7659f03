// Package main is the REST/JSON facade of Commerce Mesh: grpc-gateway handlers generated from
// the contracts' google.api.http bindings, in front of the four gRPC services.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	// Registers google.rpc.ErrorInfo, BadRequest, ... so error bodies can marshal the Any
	// details the services send; without it every such error became a 500 "failed to marshal
	// error message" (the package's tests import it themselves, which hid this).
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"

	checkoutv1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/checkout/v1"
	invoicingv1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/invoicing/v1"
	ledgerv1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/ledger/v1"
	paymentsv1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/payments/v1"
)

// Config says where the gateway listens, where each service is, and its limits.
type Config struct {
	Addr            string
	Backends        map[string]string // service name -> host:port
	RequestTimeout  time.Duration     // default deadline when the caller sets none
	MaxBodyBytes    int64
	OpenAPIPath     string // the generated spec, served at /openapi.json
	ShutdownTimeout time.Duration
	Telemetry       TelemetryConfig // read by main to build TracerProvider
	// TracerProvider makes the gateway's spans (telemetry.go); nil means the global provider
	// (a no-op unless set), which still continues an incoming traceparent.
	TracerProvider trace.TracerProvider
}

// Headers forwarded to the services as gRPC metadata (lower-cased). Authorization is forwarded
// by grpc-gateway itself. Trace context is not a forwarded header: otelgrpc injects the
// gateway's own span context (telemetry.go), the one propagation path.
var forwardedHeaders = map[string]string{
	"Idempotency-Key": "idempotency-key", // mapped onto request_id by the services (see README)
	"X-Request-Id":    "x-request-id",
}

// traceMetadata may not be set through grpc-gateway's `Grpc-Metadata-<key>` headers: that
// would be a second, unchecked path for trace context into the services.
var traceMetadata = map[string]bool{"traceparent": true, "tracestate": true, "baggage": true}

type registrar func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error

var services = map[string]registrar{
	"ledger":    ledgerv1.RegisterLedgerServiceHandler,
	"payments":  paymentsv1.RegisterPaymentsServiceHandler,
	"checkout":  checkoutv1.RegisterCheckoutServiceHandler,
	"invoicing": invoicingv1.RegisterInvoicingServiceHandler,
}

// Gateway is the facade: an http.Handler plus the connections it must close.
type Gateway struct {
	Handler http.Handler
	conns   map[string]*grpc.ClientConn
}

// Close closes the connections to the services.
func (g *Gateway) Close() {
	for _, conn := range g.conns {
		_ = conn.Close()
	}
}

// New dials every configured service and builds the handler. Services without an address are
// not served: their routes answer 404 and readiness reports them as absent.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	spec, err := os.ReadFile(cfg.OpenAPIPath)
	if err != nil {
		return nil, fmt.Errorf("read OpenAPI spec: %w", err)
	}
	allow, err := newAllowIndex(spec)
	if err != nil {
		return nil, err
	}
	provider := cfg.TracerProvider
	if provider == nil {
		provider = otel.GetTracerProvider()
	}
	mux := runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(matchHeader),
		runtime.WithMiddlewares(routeSpans),
		// proto3 JSON: lowerCamelCase names, int64 as strings, enums as names, unknown fields
		// rejected. HttpBody responses (rendered documents) are written as raw bytes.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{UseProtoNames: false},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
			},
		}),
		runtime.WithForwardResponseOption(setDownloadHeaders),
		runtime.WithRoutingErrorHandler(allow.routingError),
	)
	gw := &Gateway{conns: map[string]*grpc.ClientConn{}}
	for name, register := range services {
		addr := cfg.Backends[name]
		if addr == "" {
			continue
		}
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithStatsHandler(clientTracing(provider)),
		)
		if err != nil {
			gw.Close()
			return nil, fmt.Errorf("dial %s at %s: %w", name, addr, err)
		}
		gw.conns[name] = conn
		if err := register(ctx, mux, conn); err != nil {
			gw.Close()
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
	}
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	root.HandleFunc("GET /readyz", gw.ready)
	root.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(spec)
	})
	root.HandleFunc("GET /docs", serveDocs)
	root.Handle("/", allow.requireBearer(allow.customMethods(webhookBody(mux))))
	gw.Handler = traced(withRequestID(withLimits(routeServeMux(root), cfg)), provider)
	return gw, nil
}

func matchHeader(key string) (string, bool) {
	if md, ok := forwardedHeaders[textproto.CanonicalMIMEHeaderKey(key)]; ok {
		return md, true
	}
	md, ok := runtime.DefaultHeaderMatcher(key)
	if ok && traceMetadata[strings.ToLower(md)] {
		return "", false
	}
	return md, ok
}

// withLimits caps the request body and gives every call a deadline unless it sets its own.
func withLimits(next http.Handler, cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > cfg.MaxBodyBytes {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{
				"code": 3, "message": fmt.Sprintf("request body exceeds %d bytes", cfg.MaxBodyBytes),
			})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes)
		if r.Header.Get("Grpc-Timeout") == "" && cfg.RequestTimeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), cfg.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// withRequestID echoes the caller's X-Request-Id, or a new one, and forwards it downstream.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			buf := make([]byte, 16)
			_, _ = rand.Read(buf)
			id = hex.EncodeToString(buf)
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	states := map[string]string{}
	ready := true
	for name := range services {
		conn, ok := g.conns[name]
		if !ok {
			states[name] = "NOT_CONFIGURED"
			continue
		}
		reply, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		switch {
		case err != nil:
			states[name], ready = "UNREACHABLE", false
		case reply.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			states[name], ready = reply.GetStatus().String(), false
		default:
			states[name] = "SERVING"
		}
	}
	status := http.StatusOK
	if !ready || len(g.conns) == 0 {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, states)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func serveDocs(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(strings.TrimSpace(docsPage)))
}
