package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	invoicingv1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/invoicing/v1"
	ledgerv1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/ledger/v1"
	paymentsv1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/payments/v1"
	typev1 "github.com/commercemesh/commerce-mesh/gen/go/commerce/type/v1"
)

// fakeLedger answers GetAccount with the status its name asks for, and records metadata.
type fakeLedger struct {
	ledgerv1.UnimplementedLedgerServiceServer
	mu   sync.Mutex
	seen metadata.MD
}

func (f *fakeLedger) GetAccount(ctx context.Context, req *ledgerv1.GetAccountRequest) (*ledgerv1.GetAccountResponse, error) {
	f.record(ctx)
	id := req.GetName()[strings.LastIndex(req.GetName(), "/")+1:]
	if code, ok := codeByName[id]; ok {
		st, _ := status.New(code, "scripted "+id).WithDetails(&errdetails.ErrorInfo{
			Reason: "SCRIPTED_" + strings.ToUpper(strings.ReplaceAll(id, "-", "_")), Domain: "ledger.commerce-mesh",
		})
		return nil, st.Err()
	}
	return &ledgerv1.GetAccountResponse{Account: &ledgerv1.Account{
		Name: req.GetName(), CurrencyCode: "USD", Type: ledgerv1.AccountType_ACCOUNT_TYPE_ASSET,
	}}, nil
}

func (f *fakeLedger) CreateAccount(ctx context.Context, req *ledgerv1.CreateAccountRequest) (*ledgerv1.CreateAccountResponse, error) {
	f.record(ctx)
	return &ledgerv1.CreateAccountResponse{Account: req.GetAccount()}, nil
}

func (f *fakeLedger) GetAccountBalance(ctx context.Context, req *ledgerv1.GetAccountBalanceRequest) (*ledgerv1.GetAccountBalanceResponse, error) {
	return &ledgerv1.GetAccountBalanceResponse{Balance: &ledgerv1.AccountBalance{
		Account: req.GetAccount(), Posted: &typev1.Money{CurrencyCode: "USD", AmountMinor: 9007199254740993},
	}}, nil
}

func (f *fakeLedger) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = md
}

type fakePayments struct {
	paymentsv1.UnimplementedPaymentsServiceServer
	got chan *paymentsv1.HandlePspWebhookRequest
}

func (f *fakePayments) HandlePspWebhook(_ context.Context, req *paymentsv1.HandlePspWebhookRequest) (*paymentsv1.HandlePspWebhookResponse, error) {
	f.got <- req
	return &paymentsv1.HandlePspWebhookResponse{}, nil
}

var codeByName = map[string]codes.Code{
	"invalid-argument": codes.InvalidArgument, "unauthenticated": codes.Unauthenticated,
	"permission-denied": codes.PermissionDenied, "not-found": codes.NotFound,
	"already-exists": codes.AlreadyExists, "aborted": codes.Aborted,
	"failed-precondition": codes.FailedPrecondition, "resource-exhausted": codes.ResourceExhausted,
	"unavailable": codes.Unavailable, "deadline-exceeded": codes.DeadlineExceeded,
}

type fakeInvoicing struct {
	invoicingv1.UnimplementedInvoicingServiceServer
}

func (fakeInvoicing) RenderInvoice(_ context.Context, req *invoicingv1.RenderInvoiceRequest) (*invoicingv1.RenderInvoiceResponse, error) {
	return &invoicingv1.RenderInvoiceResponse{
		Body:     &httpbody.HttpBody{ContentType: "application/pdf", Data: []byte("%PDF-1.7 fake")},
		FileName: "INV-2026-000001.pdf",
	}, nil
}

type harness struct {
	url      string
	addr     string // the fake services' gRPC address
	ledger   *fakeLedger
	payments *fakePayments
}

func start(t *testing.T) *harness {
	t.Helper()
	return startWith(t, nil)
}

// startWith serves the gateway with the given tracer provider (nil: the global one).
func startWith(t testing.TB, provider trace.TracerProvider) *harness {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{ledger: &fakeLedger{}, payments: &fakePayments{got: make(chan *paymentsv1.HandlePspWebhookRequest, 1)}}
	server := grpc.NewServer()
	ledgerv1.RegisterLedgerServiceServer(server, h.ledger)
	paymentsv1.RegisterPaymentsServiceServer(server, h.payments)
	invoicingv1.RegisterInvoicingServiceServer(server, fakeInvoicing{})
	healthpb.RegisterHealthServer(server, health.NewServer())
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	addr := listener.Addr().String()
	gw, err := New(context.Background(), Config{
		Backends:     map[string]string{"ledger": addr, "payments": addr, "invoicing": addr},
		MaxBodyBytes: 4096, OpenAPIPath: "../../gen/openapi/commerce.swagger.json",
		TracerProvider: provider,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	web := httptest.NewServer(gw.Handler)
	t.Cleanup(web.Close)
	h.url, h.addr = web.URL, addr
	return h
}

func call(t *testing.T, method, url, body string, headers map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer test-token") // the services verify it, not the gateway
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var decoded map[string]any
	_ = json.Unmarshal(raw, &decoded)
	return resp, decoded
}

func TestErrorsMapToDocumentedHTTPStatusesWithTheStatusBody(t *testing.T) {
	h := start(t)
	want := map[string]int{
		"invalid-argument": 400, "unauthenticated": 401, "permission-denied": 403, "not-found": 404,
		"already-exists": 409, "aborted": 409, "failed-precondition": 400, "resource-exhausted": 429,
		"unavailable": 503, "deadline-exceeded": 504,
	}
	for name, httpStatus := range want {
		resp, body := call(t, "GET", h.url+"/v1/tenants/acme/accounts/"+name, "", nil)
		if resp.StatusCode != httpStatus {
			t.Errorf("%s: HTTP %d, want %d", name, resp.StatusCode, httpStatus)
		}
		details, _ := body["details"].([]any)
		if len(details) != 1 {
			t.Fatalf("%s: want one detail, got %v", name, body)
		}
		info := details[0].(map[string]any)
		if info["@type"] != "type.googleapis.com/google.rpc.ErrorInfo" || !strings.HasPrefix(info["reason"].(string), "SCRIPTED_") {
			t.Errorf("%s: detail is not the ErrorInfo: %v", name, info)
		}
		if int(body["code"].(float64)) != int(codeByName[name]) {
			t.Errorf("%s: body code %v", name, body["code"])
		}
	}
}

func TestAnotherMethodOnAKnownPathIs405WithTheStatusBody(t *testing.T) {
	h := start(t)
	resp, body := call(t, "DELETE", h.url+"/v1/tenants/acme/accounts/not-found", "", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("HTTP %d, want 405", resp.StatusCode)
	}
	if int(body["code"].(float64)) != int(codes.Unimplemented) {
		t.Errorf("body %v", body)
	}
	if allow := resp.Header.Get("Allow"); allow != "GET" {
		t.Errorf("Allow %q, want GET", allow)
	}
	resp, _ = call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash:close", "", nil)
	if allow := resp.Header.Get("Allow"); resp.StatusCode != http.StatusMethodNotAllowed || allow != "POST" {
		t.Errorf("custom method: HTTP %d, Allow %q, want 405 and POST", resp.StatusCode, allow)
	}
	if resp, _ := call(t, "GET", h.url+"/v1/nothing/here", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: HTTP %d, want 404", resp.StatusCode)
	}
}

func TestACallWithoutATokenIs401BeforeItsBodyIsRead(t *testing.T) {
	h := start(t)
	resp, body := call(t, "POST", h.url+"/v1/tenants/acme:verifyChain", `{"startSequence": ""}`, map[string]string{"Authorization": ""})
	if resp.StatusCode != http.StatusUnauthorized || int(body["code"].(float64)) != int(codes.Unauthenticated) {
		t.Fatalf("HTTP %d %v, want 401 UNAUTHENTICATED", resp.StatusCode, body)
	}
	// A token for another tenant than the path names: 403, whatever the body.
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"tenant":"globex"}`))
	foreign := map[string]string{"Authorization": "Bearer e30." + claims + ".sig"}
	resp, body = call(t, "POST", h.url+"/v1/tenants/acme:verifyChain", `{"startSequence": ""}`, foreign)
	if resp.StatusCode != http.StatusForbidden || int(body["code"].(float64)) != int(codes.PermissionDenied) {
		t.Fatalf("foreign tenant: HTTP %d %v, want 403 PERMISSION_DENIED", resp.StatusCode, body)
	}
	// PSP webhooks are signed, not bearer-authenticated: they reach the service.
	if resp, _ := call(t, "POST", h.url+"/v1/webhooks/sandbox", `{}`, map[string]string{"Authorization": ""}); resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("webhook refused for want of a bearer token")
	}
}

// Without a tracer provider (no exporter) the caller's traceparent still reaches the services,
// now by otelgrpc's injection; gateway_tracing_test.go covers the traced gateway.
func TestHeadersReachTheServiceAsMetadata(t *testing.T) {
	h := start(t)
	resp, _ := call(t, "POST", h.url+"/v1/tenants/acme/accounts", `{"code":"CASH","currencyCode":"USD"}`, map[string]string{
		"Authorization":   "Bearer token-123",
		"Idempotency-Key": "6f1d3c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f",
		"Traceparent":     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"X-Request-Id":    "req-1",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	for key, want := range map[string]string{
		"authorization":   "Bearer token-123",
		"idempotency-key": "6f1d3c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f",
		"traceparent":     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"x-request-id":    "req-1",
	} {
		if got := h.ledger.seen.Get(key); len(got) != 1 || got[0] != want {
			t.Errorf("metadata %s = %v, want %q", key, got, want)
		}
	}
	if resp.Header.Get("X-Request-Id") != "req-1" {
		t.Errorf("X-Request-Id not echoed: %q", resp.Header.Get("X-Request-Id"))
	}
}

func TestARequestIDIsGeneratedAndEchoedWhenAbsent(t *testing.T) {
	h := start(t)
	resp, _ := call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash", "", nil)
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 32 || h.ledger.seen.Get("x-request-id")[0] != id {
		t.Errorf("generated id %q not echoed and forwarded", id)
	}
}

func TestJSONUsesCamelCaseInt64StringsAndEnumNames(t *testing.T) {
	h := start(t)
	_, account := call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash", "", nil)
	got := account["account"].(map[string]any)
	if got["currencyCode"] != "USD" || got["type"] != "ACCOUNT_TYPE_ASSET" {
		t.Errorf("account JSON: %v", got)
	}
	_, balance := call(t, "GET", h.url+"/v1/tenants/acme/accounts/cash/balance", "", nil)
	posted := balance["balance"].(map[string]any)["posted"].(map[string]any)
	if posted["amountMinor"] != "9007199254740993" {
		t.Errorf("int64 must be a string, exactly: %v", balance)
	}
}

func TestUnknownJSONFieldsAreRejected(t *testing.T) {
	h := start(t)
	resp, body := call(t, "POST", h.url+"/v1/tenants/acme/accounts", `{"code":"CASH","colour":"red"}`, nil)
	if resp.StatusCode != 400 || !strings.Contains(body["message"].(string), "colour") {
		t.Errorf("HTTP %d %v", resp.StatusCode, body)
	}
}

func TestOversizedBodiesAreRefused(t *testing.T) {
	h := start(t)
	resp, _ := call(t, "POST", h.url+"/v1/tenants/acme/accounts", `{"code":"`+strings.Repeat("x", 5000)+`"}`, nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("HTTP %d, want 413", resp.StatusCode)
	}
}

func TestWebhooksArriveAsRawBytesWithTheirSignature(t *testing.T) {
	h := start(t)
	payload := `{"id":"evt_1","type":"charge.captured"}`
	resp, _ := call(t, "POST", h.url+"/v1/webhooks/stripe", payload, map[string]string{
		"Content-Type": "application/json", signatureHeader: "v1=abc", timestampHeader: "1700000000",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	got := <-h.payments.got
	if string(got.GetPayload()) != payload || got.GetSignature() != "v1=abc" || got.GetTimestamp() != "1700000000" || got.GetPsp() != "stripe" {
		t.Errorf("webhook request: %v", got)
	}
}

func TestHealthReadinessAndTheSpecAreServed(t *testing.T) {
	h := start(t)
	if resp, _ := call(t, "GET", h.url+"/healthz", "", nil); resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	resp, states := call(t, "GET", h.url+"/readyz", "", nil)
	if resp.StatusCode != 200 || states["ledger"] != "SERVING" || states["checkout"] != "NOT_CONFIGURED" {
		t.Errorf("readyz %d %v", resp.StatusCode, states)
	}
	resp, spec := call(t, "GET", h.url+"/openapi.json", "", nil)
	if resp.StatusCode != 200 || spec["swagger"] != "2.0" {
		t.Errorf("openapi %d", resp.StatusCode)
	}
	if resp, _ := call(t, "GET", h.url+"/docs", "", nil); resp.StatusCode != 200 {
		t.Errorf("docs %d", resp.StatusCode)
	}
}

func TestRenderedDocumentsDownloadWithTheirContentTypeAndFileName(t *testing.T) {
	h := start(t)
	req, _ := http.NewRequest("GET", h.url+"/v1/tenants/acme/invoices/inv1:render", nil)
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(raw) != "%PDF-1.7 fake" {
		t.Fatalf("HTTP %d body %q", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/pdf" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="INV-2026-000001.pdf"` {
		t.Errorf("Content-Disposition %q", cd)
	}
}
