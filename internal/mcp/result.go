package mcp

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Result is what a tool answered, as a model is to be shown it.
type Result struct {
	// Text is the content's parts, one after another on their own lines:
	// text as it is; an image, audio or binary resource as a placeholder
	// naming its type and size; a text resource as a line naming it and
	// its text. When the content is empty, the structured content's JSON.
	// It holds at most the server's max_output bytes, then, when it was
	// cut, a line "[truncated: N bytes more]".
	Text string
	// Full is the whole text when Text was cut (for the caller to keep
	// as an artifact); empty otherwise.
	Full string
	// Structured is the tool's structuredContent as JSON, when it sent one
	// no larger than max_output.
	Structured json.RawMessage
	// IsError reports that the tool (or its server, refusing the call)
	// says the call failed; Text says why. The model can act on it: it is
	// not a failure of Hive or of the server.
	IsError bool
}

// newResult flattens res, redacts it and caps it at max bytes.
func newResult(res *sdk.CallToolResult, redact func(string) string, max int) (Result, error) {
	var structured json.RawMessage
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return Result{}, fmt.Errorf("structuredContent: %w", err)
		}
		structured = json.RawMessage(redact(string(b)))
	}
	parts := make([]string, 0, len(res.Content))
	for _, c := range res.Content {
		parts = append(parts, flatten(c))
	}
	text := strings.Join(parts, "\n")
	if len(res.Content) == 0 && structured != nil {
		text = string(structured)
	}
	if len(structured) > max || !json.Valid(structured) {
		structured = nil
	}
	r := Result{IsError: res.IsError}
	// Redacted before it is cut, so that a secret across the cut cannot
	// leave its first half in Text.
	r.Text, r.Full = capText(redact(text), max)
	r.Structured = structured
	return r, nil
}

// flatten renders one part of a result's content as text.
func flatten(c sdk.Content) string {
	switch c := c.(type) {
	case *sdk.TextContent:
		return c.Text
	case *sdk.ImageContent:
		return fmt.Sprintf("[image: %s, %d bytes]", orUnknown(c.MIMEType), len(c.Data))
	case *sdk.AudioContent:
		return fmt.Sprintf("[audio: %s, %d bytes]", orUnknown(c.MIMEType), len(c.Data))
	case *sdk.ResourceLink:
		s := fmt.Sprintf("[resource link: %s, %s", c.URI, orUnknown(c.MIMEType))
		if c.Size != nil {
			s += fmt.Sprintf(", %d bytes", *c.Size)
		}
		if c.Name != "" {
			s += ", name " + c.Name
		}
		return s + "]"
	case *sdk.EmbeddedResource:
		r := c.Resource
		switch {
		case r == nil:
			return "[resource: empty]"
		case r.Blob != nil:
			return fmt.Sprintf("[resource: %s, %s, %d bytes of binary data, not shown]", r.URI, orUnknown(r.MIMEType), len(r.Blob))
		default:
			return fmt.Sprintf("[resource: %s, %s, %d bytes]\n%s", r.URI, orUnknown(r.MIMEType), len(r.Text), r.Text)
		}
	}
	return fmt.Sprintf("[content of type %T, not shown]", c)
}

func orUnknown(mime string) string {
	if mime == "" {
		return "unknown type"
	}
	return mime
}

// capText cuts s to at most max bytes (at a character's start) and says
// how much was left out; full is s when it was cut.
func capText(s string, max int) (text, full string) {
	if len(s) <= max {
		return s, ""
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s\n[truncated: %d bytes more]", s[:cut], len(s)-cut), s
}
