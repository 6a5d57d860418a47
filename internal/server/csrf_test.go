package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestCrossOrigin: what the page's cookie authenticates must come from
// the page; a bearer token is not ambient and passes from anywhere; a
// body must be declared JSON.
func TestCrossOrigin(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1}).handle)
	const run = `{"task": "count", "budget_usd": 1}`
	const chat = `{"model": "hive", "messages": [{"role": "user", "content": "hi"}]}`
	self := e.srv.URL
	evil := "http://127.0.0.1:1"
	cases := []struct {
		name         string
		method, path string
		auth         string // "cookie" or "bearer"
		body, ctype  string
		site, origin string // Sec-Fetch-Site, Origin
		status       int
		code         string
	}{
		{"cookie POST, same-site page", "POST", "/v1/runs", "cookie", run, "application/json", "same-site", evil, 403, "forbidden"},
		{"cookie POST, cross-site page", "POST", "/v1/runs", "cookie", run, "application/json", "cross-site", "https://evil.example", 403, "forbidden"},
		{"cookie POST, Origin only", "POST", "/v1/runs", "cookie", run, "application/json", "", evil, 403, "forbidden"},
		{"cookie POST, Origin null", "POST", "/v1/runs", "cookie", run, "application/json", "", "null", 403, "forbidden"},
		{"cookie cancel, cross-site", "POST", "/v1/runs/r1/cancel", "cookie", "", "", "same-site", evil, 403, "forbidden"},
		{"cookie chat, cross-site", "POST", "/v1/chat/completions", "cookie", chat, "application/json", "cross-site", evil, 403, "forbidden"},
		{"cookie DELETE, cross-site", "DELETE", "/v1/runs", "cookie", "", "", "cross-site", evil, 403, "forbidden"},
		{"cookie GET API, same-site page", "GET", "/v1/runs", "cookie", "", "", "same-site", "", 403, "forbidden"},
		{"cookie GET API, Origin only", "GET", "/v1/runs", "cookie", "", "", "", evil, 403, "forbidden"},
		{"cookie GET events, cross-site", "GET", "/v1/runs/r1/events", "cookie", "", "", "cross-site", "", 403, "forbidden"},
		{"cookie text/plain form, same-site", "POST", "/v1/runs", "cookie", run, "text/plain", "same-site", evil, 403, "forbidden"},

		{"cookie POST, the page", "POST", "/v1/runs", "cookie", run, "application/json", "same-origin", self, 201, ""},
		{"cookie POST, no browser headers", "POST", "/v1/runs", "cookie", run, "application/json", "", "", 201, ""},
		{"cookie GET API, the page", "GET", "/v1/runs", "cookie", "", "", "same-origin", "", 200, ""},
		{"cookie GET API, typed in", "GET", "/v1/runs", "cookie", "", "", "none", "", 200, ""},
		{"cookie GET page, from a link", "GET", "/", "cookie", "", "", "cross-site", "", 200, ""},
		{"bearer POST, cross-site", "POST", "/v1/runs", "bearer", run, "application/json", "cross-site", evil, 201, ""},
		{"bearer GET, cross-site", "GET", "/v1/runs", "bearer", "", "", "cross-site", evil, 200, ""},

		{"cookie text/plain, the page", "POST", "/v1/runs", "cookie", run, "text/plain", "same-origin", self, 415, "unsupported_media_type"},
		{"bearer text/plain", "POST", "/v1/runs", "bearer", run, "text/plain", "", "", 415, "unsupported_media_type"},
		{"bearer form", "POST", "/v1/runs", "bearer", "task=x", "application/x-www-form-urlencoded", "", "", 415, "unsupported_media_type"},
		{"bearer no content type", "POST", "/v1/runs", "bearer", run, "", "", "", 415, "unsupported_media_type"},
		{"bearer chat text/plain", "POST", "/v1/chat/completions", "bearer", chat, "text/plain", "", "", 415, "unsupported_media_type"},
		{"bearer JSON with charset", "POST", "/v1/runs", "bearer", run, "application/json; charset=utf-8", "", "", 201, ""},
	}
	started := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, e.srv.URL+c.path, strings.NewReader(c.body))
			if c.auth == "cookie" {
				req.AddCookie(&http.Cookie{Name: CookieName, Value: testToken})
			} else {
				req.Header.Set("Authorization", "Bearer "+testToken)
			}
			for k, v := range map[string]string{"Content-Type": c.ctype, "Sec-Fetch-Site": c.site, "Origin": c.origin} {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			var body errorJSON
			json.Unmarshal(data, &body)
			if resp.StatusCode != c.status || body.Error.Code != c.code {
				t.Fatalf("%d %q (%s), want %d %q", resp.StatusCode, body.Error.Code, body.Error.Message, c.status, c.code)
			}
			if c.status == 403 && !strings.Contains(body.Error.Message, "cookie") {
				t.Errorf("403 does not say why: %q", body.Error.Message)
			}
			if resp.StatusCode == 201 {
				started++
			}
		})
	}
	var list struct{ Runs []json.RawMessage }
	e.do("GET", "/v1/runs", testToken, nil, &list)
	if len(list.Runs) != started {
		t.Errorf("%d runs, want the %d the allowed requests started", len(list.Runs), started)
	}
}
