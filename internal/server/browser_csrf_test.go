package server

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// statusRecorder notes the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// TestBrowserCrossOrigin is the attack as a browser makes it: signed in
// to the page, the user visits a page on another port of 127.0.0.1 (the
// same site, so the SameSite=Strict cookie goes along), which auto-submits
// a text/plain form whose body is JSON to POST /v1/runs.
func TestBrowserCrossOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts Chromium; skipped in -short mode")
	}
	chromium := chromiumPath(t)
	e := newTestEnv(t, (&script{n: 1}).handle)

	// The server's answers to POSTs, with what the browser sent.
	type post struct {
		status             int
		site, origin, ctyp string
		cookie             bool
	}
	var mu sync.Mutex
	var posts []post
	h := e.server.Handler()
	hive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if r.Method == "POST" {
			_, err := r.Cookie(CookieName)
			mu.Lock()
			posts = append(posts, post{rec.status, r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin"), r.Header.Get("Content-Type"), err == nil})
			mu.Unlock()
		}
	}))
	defer hive.Close()

	// The other site: its form's text/plain body is {"task": "pwned="}.
	form := `<!doctype html><title>cats</title>
<form method="POST" enctype="text/plain" action="` + html.EscapeString(hive.URL+"/v1/runs") + `">
<input type="hidden" name='{"task": "pwned' value='"}'>
</form>
<script>document.forms[0].submit()</script>`
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(form))
	}))
	defer evil.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, browserOptions(chromium, t.TempDir())...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()

	// Sign in, then visit the other site.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(hive.URL+"/?token="+testToken),
		chromedp.WaitVisible(chromedp.CSS(`#start-form`)),
		chromedp.Navigate(evil.URL+"/"),
	); err != nil {
		t.Fatal(err)
	}
	var got post
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(posts)
		if n > 0 {
			got = posts[0]
		}
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the form was not submitted within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the form's POST: %+v", got)
	if !got.cookie {
		t.Fatal("the browser did not send the cookie: the test does not show the attack")
	}
	if got.status != http.StatusForbidden {
		t.Errorf("the cross-site form got %d, want 403", got.status)
	}
	waitText := func() string {
		for time.Now().Before(deadline) {
			s, err := chromedp.Run(bctx, chromedp.Evaluate[string](`location.href.includes("/v1/runs") ? document.body.innerText : ""`))
			if err == nil && s != "" {
				return s
			}
			time.Sleep(50 * time.Millisecond)
		}
		return ""
	}
	if page := waitText(); !strings.Contains(page, `"forbidden"`) {
		t.Errorf("the browser shows %q, want the forbidden error", page)
	}

	var list struct{ Runs []json.RawMessage }
	e.do("GET", "/v1/runs", testToken, nil, &list)
	if len(list.Runs) != 0 {
		t.Errorf("%d runs started by the other site", len(list.Runs))
	}
}
