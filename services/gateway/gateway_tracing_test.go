package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	ledgerv1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/ledger/v1"
)

const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
	callerParent  = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

func (f *fakeLedger) ListAccounts(ctx context.Context, _ *ledgerv1.ListAccountsRequest) (*ledgerv1.ListAccountsResponse, error) {
	f.record(ctx)
	return &ledgerv1.ListAccountsResponse{}, nil
}

func (f *fakeLedger) metadata() metadata.MD {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen.Copy()
}

// recorded starts the gateway with an SDK tracer provider that records every ended span.
func recorded(t *testing.T) (*harness, *tracetest.SpanRecorder) {
	t.Helper()
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	return startWith(t, provider), recorder
}

// ended waits for n ended spans: the server span ends after the response reached the client.
func ended(t *testing.T, recorder *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans := recorder.Ended()
		if len(spans) >= n || time.Now().After(deadline) {
			if len(spans) != n {
				t.Fatalf("%d spans ended, want %d: %v", len(spans), n, names(spans))
			}
			return spans
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.SpanKind().String()+" "+s.Name())
	}
	return out
}

func byKind(t *testing.T, spans []sdktrace.ReadOnlySpan, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.SpanKind() == kind {
			return s
		}
	}
	t.Fatalf("no %s span in %v", kind, names(spans))
	return nil
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// seenTraceparent is the one traceparent the backend got, parsed.
func seenTraceparent(t *testing.T, md metadata.MD) (traceID, spanID string) {
	t.Helper()
	values := md.Get("traceparent")
	if len(values) != 1 {
		t.Fatalf("backend got traceparent %v, want exactly one", values)
	}
	parts := strings.Split(values[0], "-")
	if len(parts) != 4 || parts[0] != "00" {
		t.Fatalf("malformed traceparent %q", values[0])
	}
	return parts[1], parts[2]
}

func TestTheGatewaySpanContinuesTheCallersTrace(t *testing.T) {
	h, recorder := recorded(t)
	resp, _ := call(t, "POST", h.url+"/v1/tenants/acme/accounts", `{"code":"CASH","currencyCode":"USD"}`, map[string]string{
		"Idempotency-Key": "6f1d3c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f",
		"Traceparent":     callerParent,
		"Tracestate":      "vendor=abc",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	spans := ended(t, recorder, 2)
	server, client := byKind(t, spans, trace.SpanKindServer), byKind(t, spans, trace.SpanKindClient)

	if server.Name() != "POST /v1/{parent=tenants/*}/accounts" {
		t.Errorf("server span named %q", server.Name())
	}
	if got := attr(server, semconv.HTTPRouteKey); got != "/v1/{parent=tenants/*}/accounts" {
		t.Errorf("http.route %q", got)
	}
	parent := server.Parent()
	if !parent.IsRemote() || parent.TraceID().String() != callerTraceID || parent.SpanID().String() != callerSpanID {
		t.Errorf("server span's parent is %v, want the caller's remote span", parent)
	}
	if server.SpanContext().TraceID().String() != callerTraceID {
		t.Errorf("server span in trace %s, want the caller's", server.SpanContext().TraceID())
	}
	if client.Name() != "commerce.ledger.v1.LedgerService/CreateAccount" {
		t.Errorf("client span named %q", client.Name())
	}
	if client.Parent().SpanID() != server.SpanContext().SpanID() || client.SpanContext().TraceID() != server.SpanContext().TraceID() {
		t.Errorf("client span is not the server span's child: parent %v", client.Parent())
	}
	// The service continues from the gateway's client span, in the caller's trace.
	md := h.ledger.metadata()
	traceID, spanID := seenTraceparent(t, md)
	if traceID != callerTraceID || spanID != client.SpanContext().SpanID().String() {
		t.Errorf("backend traceparent %s/%s, want %s/%s", traceID, spanID, callerTraceID, client.SpanContext().SpanID())
	}
	if got := md.Get("tracestate"); len(got) != 1 || got[0] != "vendor=abc" {
		t.Errorf("backend tracestate %v", got)
	}
}

func TestWithoutATraceparentTheGatewaySpanIsTheRoot(t *testing.T) {
	h, recorder := recorded(t)
	if resp, _ := call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash", "", nil); resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	spans := ended(t, recorder, 2)
	server, client := byKind(t, spans, trace.SpanKindServer), byKind(t, spans, trace.SpanKindClient)
	if server.Parent().IsValid() {
		t.Errorf("server span has a parent %v, want a root", server.Parent())
	}
	if server.Name() != "GET /v1/{name=tenants/*/accounts/*}" {
		t.Errorf("server span named %q", server.Name())
	}
	if client.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("client span is not the server span's child")
	}
	traceID, spanID := seenTraceparent(t, h.ledger.metadata())
	if traceID != server.SpanContext().TraceID().String() || spanID != client.SpanContext().SpanID().String() {
		t.Errorf("backend traceparent %s/%s is not the gateway's trace", traceID, spanID)
	}
}

func TestGrpcMetadataHeadersCannotSetASecondTraceContext(t *testing.T) {
	h, recorder := recorded(t)
	smuggled := "00-11111111111111111111111111111111-2222222222222222-01"
	resp, _ := call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash", "", map[string]string{
		"Traceparent": callerParent, "Grpc-Metadata-Traceparent": smuggled, "Grpc-Metadata-Tracestate": "evil=1",
		"Grpc-Metadata-Baggage": "user=alice",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	client := byKind(t, ended(t, recorder, 2), trace.SpanKindClient)
	md := h.ledger.metadata()
	if traceID, spanID := seenTraceparent(t, md); traceID != callerTraceID || spanID != client.SpanContext().SpanID().String() {
		t.Errorf("backend traceparent %s-%s, want the gateway's client span", traceID, spanID)
	}
	if got := md.Get("tracestate"); len(got) != 0 {
		t.Errorf("tracestate %v reached the service", got)
	}
	if got := md.Get("baggage"); len(got) != 0 {
		t.Errorf("baggage %v reached the service", got)
	}
}

func TestWithoutAnExporterTheCallersTraceStillReachesTheServices(t *testing.T) {
	provider, shutdown, err := newTracerProvider(context.Background(), TelemetryConfig{SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	if _, ok := provider.(*sdktrace.TracerProvider); ok {
		t.Fatal("an SDK provider without exporters would start spans nobody can see")
	}
	h := startWith(t, provider)
	if resp, _ := call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash", "", map[string]string{"Traceparent": callerParent}); resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	if got := h.ledger.metadata().Get("traceparent"); len(got) != 1 || got[0] != callerParent {
		t.Errorf("backend traceparent %v, want the caller's %s", got, callerParent)
	}
}

func TestSpansCarryNoCredentialsKeysQueriesOrBodies(t *testing.T) {
	h, recorder := recorded(t)
	secrets := []string{
		"tok-SECRET-4711",                      // Authorization
		"6f1d3c1e-8d4b-4c1a-9e7f-000000004711", // Idempotency-Key
		"QUERY-SECRET-4711",                    // query values
		"BODY-SECRET-4711",                     // request bodies
		"SIG-SECRET-4711",                      // webhook signature (moved into the query)
		"REQ-ID-4711",                          // X-Request-Id
	}
	headers := map[string]string{
		"Authorization": "Bearer tok-SECRET-4711", "Idempotency-Key": secrets[1], "X-Request-Id": "REQ-ID-4711",
		"Content-Type": "application/json",
	}
	call(t, "POST", h.url+"/v1/tenants/acme/accounts?requestId=QUERY-SECRET-4711", `{"code":"BODY-SECRET-4711","currencyCode":"USD"}`, headers)
	call(t, "GET", h.url+"/v1/tenants/acme/accounts?pageToken=QUERY-SECRET-4711&pageSize=7", "", headers)
	call(t, "POST", h.url+"/v1/webhooks/sandbox?x=QUERY-SECRET-4711", `{"id":"BODY-SECRET-4711"}`, map[string]string{
		signatureHeader: "SIG-SECRET-4711", timestampHeader: "1700000000",
	})
	<-h.payments.got
	// Refused before routing (401) and unknown paths are traced too.
	call(t, "POST", h.url+"/v1/tenants/acme:verifyChain?q=QUERY-SECRET-4711", `{"x":"BODY-SECRET-4711"}`, map[string]string{"Authorization": ""})
	call(t, "GET", h.url+"/v1/nothing/here?q=QUERY-SECRET-4711", "", headers)

	spans := ended(t, recorder, 8) // 3 routed calls x (server + client), 2 unrouted server spans
	for _, s := range spans {
		texts := []string{s.Name(), s.Status().Description}
		for _, kv := range s.Attributes() {
			texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, e := range s.Events() {
			texts = append(texts, e.Name)
			for _, kv := range e.Attributes {
				texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
			}
		}
		for _, text := range texts {
			for _, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Errorf("span %q carries %q in %q", s.Name(), secret, text)
				}
			}
		}
	}
	got := map[string]bool{}
	for _, name := range names(spans) {
		got[name] = true
	}
	for _, want := range []string{
		"server POST /v1/{parent=tenants/*}/accounts", "server GET /v1/{parent=tenants/*}/accounts",
		"server POST /v1/webhooks/{psp=*}", "server POST", "server GET",
		"client commerce.payments.v1.PaymentsService/HandlePspWebhook",
	} {
		if !got[want] {
			t.Errorf("no span %q in %v", want, names(spans))
		}
	}
}

func TestProbesAreNotTracedAndStaticRoutesAreNamed(t *testing.T) {
	h, recorder := recorded(t)
	call(t, "GET", h.url+"/healthz", "", nil)
	call(t, "GET", h.url+"/readyz", "", nil)
	call(t, "GET", h.url+"/openapi.json", "", nil)
	spans := ended(t, recorder, 1)
	if spans[0].Name() != "GET /openapi.json" || attr(spans[0], semconv.HTTPRouteKey) != "/openapi.json" {
		t.Errorf("spans %v", names(spans))
	}
}

// zipkinCollector is a Zipkin v2 span receiver: it keeps what the exporter posts.
type zipkinCollector struct {
	mu    sync.Mutex
	spans []map[string]any
}

func (z *zipkinCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var spans []map[string]any
	if r.URL.Path != "/api/v2/spans" || json.Unmarshal(raw, &spans) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	z.mu.Lock()
	z.spans = append(z.spans, spans...)
	z.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (z *zipkinCollector) received() []map[string]any {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]map[string]any(nil), z.spans...)
}

func TestZipkinExportIsFlushedOnShutdownAndSamplesByParent(t *testing.T) {
	collector := &zipkinCollector{}
	zipkinServer := httptest.NewServer(collector)
	defer zipkinServer.Close()
	// Ratio 0: the gateway starts no sampled trace of its own, but continues a sampled caller's.
	provider, shutdown, err := newTracerProvider(context.Background(), TelemetryConfig{
		ZipkinEndpoint: zipkinServer.URL + "/api/v2/spans", SampleRatio: 0, ServiceVersion: "1.2.3",
	})
	if err != nil {
		t.Fatal(err)
	}
	h := startWith(t, provider)
	call(t, "GET", h.url+"/v1/tenants/acme/accounts/unsampled", "", nil)
	call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash", "", map[string]string{"Traceparent": callerParent})
	if got := collector.received(); len(got) != 0 {
		t.Fatalf("spans exported before the batch was flushed: %v", got)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := collector.received()
	if len(spans) != 2 {
		t.Fatalf("%d spans exported, want the sampled request's 2: %v", len(spans), spans)
	}
	for _, span := range spans {
		endpoint, _ := span["localEndpoint"].(map[string]any)
		if span["traceId"] != callerTraceID || endpoint["serviceName"] != "gateway" {
			t.Errorf("span %v", span)
		}
		if tags, _ := span["tags"].(map[string]any); span["kind"] == "SERVER" && tags["http.route"] != "/v1/{name=tenants/*/accounts/*}" {
			t.Errorf("server span tags %v", tags)
		}
	}
}

// otlpCollector is an OTLP/gRPC trace receiver.
type otlpCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	got chan *coltracepb.ExportTraceServiceRequest
}

func (c *otlpCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.got <- req
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestOTLPExportCarriesTheResource(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=gateway-7d9f-abcde,service.namespace=commerce-mesh")
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	collector := &otlpCollector{got: make(chan *coltracepb.ExportTraceServiceRequest, 10)}
	server := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(server, collector)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()

	provider, shutdown, err := newTracerProvider(context.Background(), TelemetryConfig{
		OTLPEndpoint: "http://" + listener.Addr().String(), SampleRatio: 1, ServiceVersion: "1.2.3",
	})
	if err != nil {
		t.Fatal(err)
	}
	h := startWith(t, provider)
	call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash", "", nil)
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	resource := map[string]string{}
	for len(collector.got) > 0 {
		for _, rs := range (<-collector.got).GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				resource[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
	}
	if len(names) != 2 {
		t.Errorf("exported spans %v, want the server and client span", names)
	}
	for key, want := range map[string]string{
		"service.name": "gateway", "service.version": "1.2.3", "k8s.pod.name": "gateway-7d9f-abcde",
		"service.namespace": "commerce-mesh",
	} {
		if resource[key] != want {
			t.Errorf("resource %s = %q, want %q (all: %v)", key, resource[key], want, resource)
		}
	}
}

func TestExporterEndpointsMustBeURLs(t *testing.T) {
	for _, bad := range []string{"otel-collector:4317", "ftp://x/y", "http://"} {
		if checkEndpoint("OTLP endpoint", bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := checkEndpoint("OTLP endpoint", "http://otel-collector:4317"); err != nil {
		t.Error(err)
	}
}

// The SIGTERM path of main: the drain lets the request in flight finish, then its spans are
// flushed before serve returns.
func TestShutdownDrainsThenFlushesTheSpans(t *testing.T) {
	collector := &zipkinCollector{}
	zipkinServer := httptest.NewServer(collector)
	defer zipkinServer.Close()
	backend := start(t) // its fake services, behind the gateway under test
	ctx, terminate := context.WithCancel(context.Background())
	defer terminate()
	addr := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, Config{
			Addr: "127.0.0.1:0", Backends: map[string]string{"ledger": backend.addr},
			MaxBodyBytes: 4096, OpenAPIPath: "../../gen/openapi/commerce.swagger.json",
			RequestTimeout: 5 * time.Second, ShutdownTimeout: 5 * time.Second,
			Telemetry: TelemetryConfig{ZipkinEndpoint: zipkinServer.URL + "/api/v2/spans", SampleRatio: 1},
		}, func(a net.Addr) { addr <- a })
	}()
	url := "http://" + (<-addr).String()
	if resp, _ := call(t, "GET", url+"/v1/tenants/acme/accounts/cash", "", map[string]string{"Traceparent": callerParent}); resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	if got := collector.received(); len(got) != 0 {
		t.Fatalf("spans exported before shutdown: %v", got)
	}
	terminate()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	spans := collector.received()
	if len(spans) != 2 {
		t.Fatalf("%d spans flushed at shutdown, want 2: %v", len(spans), spans)
	}
	for _, span := range spans {
		if span["traceId"] != callerTraceID {
			t.Errorf("span %v", span)
		}
	}
}

// BenchmarkTracingOverhead: GetAccount through the gateway, untraced (no exporter configured)
// and traced with every span sampled and batched (to an exporter that drops them).
//
//	go test -run '^$' -bench TracingOverhead ./services/gateway
func BenchmarkTracingOverhead(b *testing.B) {
	for _, traced := range []bool{false, true} {
		name := "untraced"
		var provider trace.TracerProvider
		if traced {
			name = "traced"
			sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
			provider = sdk
		}
		b.Run(name, func(b *testing.B) {
			h := startWith(b, provider)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", h.url+"/v1/tenants/acme/accounts/cash", nil)
					req.Header.Set("Authorization", "Bearer test-token")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			})
		})
	}
}
