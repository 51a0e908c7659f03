package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// allowIndex knows, from the OpenAPI spec, which methods each path template serves.
type allowIndex []allowRoute

type allowRoute struct {
	path   *regexp.Regexp
	verb   string // the custom method after ':' (`/v1/{name}:close`), "" for none
	method string
	public bool // the spec lifts the bearer requirement (PSP webhooks, signed instead)
}

// splitVerb separates a custom method (`:close`) from the last path segment.
func splitVerb(path string) (string, string) {
	last := strings.LastIndex(path, "/")
	if i := strings.LastIndex(path, ":"); i > last && !strings.HasSuffix(path, "}") {
		return path[:i], path[i+1:]
	}
	return path, ""
}

var pathParameter = regexp.MustCompile(`\{([^}]+)\}`)

// newAllowIndex reads the spec's paths; a path parameter matches its declared pattern (an
// AIP resource name such as tenants/[^/]+/accounts/[^/]+) or one segment.
func newAllowIndex(spec []byte) (allowIndex, error) {
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct{ Name, In, Pattern string }
			Security   *[]map[string][]string
		}
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("parse OpenAPI spec: %w", err)
	}
	var index allowIndex
	for route, operations := range doc.Paths {
		template, verb := splitVerb(route)
		for method, op := range operations {
			patterns := map[string]string{}
			for _, p := range op.Parameters {
				if p.In == "path" && p.Pattern != "" {
					patterns[p.Name] = p.Pattern
				}
			}
			parts := pathParameter.Split(template, -1)
			names := pathParameter.FindAllStringSubmatch(template, -1)
			expr := regexp.QuoteMeta(parts[0])
			for i, name := range names {
				pattern, ok := patterns[name[1]]
				if !ok {
					pattern = "[^/]+"
				}
				expr += "(?:" + pattern + ")" + regexp.QuoteMeta(parts[i+1])
			}
			re, err := regexp.Compile("^" + expr + "$")
			if err != nil {
				return nil, fmt.Errorf("path %s: %w", route, err)
			}
			public := op.Security != nil && len(*op.Security) == 0
			index = append(index, allowRoute{re, verb, strings.ToUpper(method), public})
		}
	}
	return index, nil
}

func (a allowIndex) route(method, path string) (allowRoute, bool) {
	base, verb := splitVerb(path)
	for _, route := range a {
		if route.method == method && route.verb == verb && route.path.MatchString(base) {
			return route, true
		}
	}
	return allowRoute{}, false
}

var pathTenant = regexp.MustCompile(`^/v1/tenants/([^/:]+)`)

// tenantClaim reads the `tenant` claim of a bearer JWT WITHOUT verifying it: it is only ever
// used to refuse early (a token for another tenant than the path names), never to admit.
// Tokens without one (service identities) are left to the services.
func tenantClaim(authorization string) (string, bool) {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	parts := strings.Split(token, ".")
	if !ok || len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct {
		Tenant string `json:"tenant"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Tenant == "" {
		return "", false
	}
	return claims.Tenant, true
}

func refuse(w http.ResponseWriter, httpStatus int, code codes.Code, reason, message string) {
	writeJSON(w, httpStatus, map[string]any{
		"code":    code,
		"message": message,
		"details": []any{map[string]any{
			"@type":  "type.googleapis.com/google.rpc.ErrorInfo",
			"reason": reason,
			"domain": "gateway.commerce-mesh",
		}},
	})
}

// requireBearer refuses, with 401, a call to an operation that needs a bearer token but has
// no Authorization header, and with 403 a token whose tenant is not the one the path names,
// before anything else looks at the request (a malformed body would otherwise get a 400 that
// tells such a caller about the API). The services verify the token; this never admits.
func (a allowIndex) requireBearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := a.route(r.Method, r.URL.Path)
		if !ok || route.public {
			next.ServeHTTP(w, r)
			return
		}
		authorization := strings.TrimSpace(r.Header.Get("Authorization"))
		if authorization == "" {
			refuse(w, http.StatusUnauthorized, codes.Unauthenticated, "TOKEN_MISSING",
				"missing 'Authorization: Bearer <token>' header")
			return
		}
		if claimed, ok := tenantClaim(authorization); ok {
			if m := pathTenant.FindStringSubmatch(r.URL.Path); m != nil && m[1] != claimed {
				refuse(w, http.StatusForbidden, codes.PermissionDenied, "TENANT_MISMATCH",
					"the resource belongs to another tenant than the token's")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (a allowIndex) methods(path string) []string {
	base, verb := splitVerb(path)
	seen := map[string]bool{}
	var methods []string
	for _, route := range a {
		if route.verb == verb && route.path.MatchString(base) && !seen[route.method] {
			seen[route.method] = true
			methods = append(methods, route.method)
		}
	}
	sort.Strings(methods)
	return methods
}

// customMethods answers 405 for a custom method (`POST /v1/{name}:close`) called with another
// method. grpc-gateway would route `GET /v1/tenants/t/accounts/a:close` to GetAccount with
// the name `.../a:close`, which the service then refuses as an invalid name (400).
func (a allowIndex) customMethods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, verb := splitVerb(r.URL.Path); verb != "" {
			if methods := a.methods(r.URL.Path); len(methods) > 0 && !slices.Contains(methods, r.Method) {
				w.Header().Set("Allow", strings.Join(methods, ", "))
				writeJSON(w, http.StatusMethodNotAllowed, map[string]any{
					"code": codes.Unimplemented, "message": "method not allowed", "details": []any{},
				})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// routingError answers a request that matches no route. A known path called with another
// method gets 405 (grpc-gateway's default is 501, which clients read as a server fault),
// still with the google.rpc.Status body; everything else keeps the default (404).
// The Allow header lists the methods the spec declares for the path.
func (a allowIndex) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		return
	}
	w.Header().Set("Allow", strings.Join(a.methods(r.URL.Path), ", "))
	body, err := m.Marshal(status.New(codes.Unimplemented, "method not allowed").Proto())
	if err != nil {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", m.ContentType(nil))
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write(body)
}

// downloadable is a Render*Response: a document and the file name to save it as.
type downloadable interface {
	GetBody() *httpbody.HttpBody
	GetFileName() string
}

// setDownloadHeaders gives rendered documents their own content type and a file name, instead
// of the JSON content type grpc-gateway sets for every response.
func setDownloadHeaders(_ context.Context, w http.ResponseWriter, resp proto.Message) error {
	doc, ok := resp.(downloadable)
	if !ok || doc.GetBody() == nil {
		return nil
	}
	if ct := doc.GetBody().GetContentType(); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	if name := doc.GetFileName(); name != "" {
		safe := strings.Map(func(r rune) rune {
			if r == '"' || r == '\\' || r < 0x20 {
				return '_'
			}
			return r
		}, name)
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", safe))
	}
	return nil
}
