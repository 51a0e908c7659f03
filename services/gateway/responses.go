package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/proto"
)

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
