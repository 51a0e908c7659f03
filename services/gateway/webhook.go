package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// PSP webhook signature headers, copied into the request's `signature` and `timestamp` fields.
const (
	signatureHeader = "Webhook-Signature"
	timestampHeader = "Webhook-Timestamp"
)

// webhookBody lets PSPs post their raw payload to /v1/webhooks/{psp}. The contract binds the
// body to a bytes field, which proto3 JSON expects as base64; the signature is over the raw
// bytes, so the gateway wraps them unchanged and moves the signature headers into the query.
func webhookBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/webhooks/") {
			next.ServeHTTP(w, r)
			return
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{
				"code": 3, "message": "webhook payload too large or unreadable",
			})
			return
		}
		wrapped, _ := json.Marshal(base64.StdEncoding.EncodeToString(raw))
		r.Body = io.NopCloser(bytes.NewReader(wrapped))
		r.ContentLength = int64(len(wrapped))
		r.Header.Set("Content-Type", "application/json")
		query := r.URL.Query()
		setIfPresent(query, "signature", r.Header.Get(signatureHeader))
		setIfPresent(query, "timestamp", r.Header.Get(timestampHeader))
		r.URL.RawQuery = query.Encode()
		next.ServeHTTP(w, r)
	})
}

func setIfPresent(query url.Values, key, value string) {
	if value != "" {
		query.Set(key, value)
	}
}
