package server

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// The page is three static files embedded in the binary: no build step and
// nothing fetched from elsewhere. It reads everything through the JSON API
// and the run's event stream, and puts every server-provided string into
// the DOM as text, never as HTML; the Content-Security-Policy below makes
// that a second line of defence (no inline script, no foreign origin).
//
//go:embed web
var webFS embed.FS

// pageCSP allows only the page's own files and API.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"

// setPageHeaders sets the security headers of every page response.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// staticTypes are the content types of the files under /static/.
var staticTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".html": "text/html; charset=utf-8",
}

// page serves GET / (index.html) and GET /static/NAME (the page's script and
// style sheet). Authentication is the caller's: the handler only serves.
func (s *Server) page() http.Handler {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	modTime := time.Now()
	serve := func(w http.ResponseWriter, r *http.Request, name string) {
		data, err := fs.ReadFile(sub, name)
		ctype, ok := staticTypes[path.Ext(name)]
		if err != nil || !ok {
			setPageHeaders(w.Header())
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		setPageHeaders(h)
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, name, modTime, bytes.NewReader(data))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			setPageHeaders(w.Header())
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch p := r.URL.Path; {
		case p == "/" || p == "/index.html":
			serve(w, r, "index.html")
		case len(p) > len("/static/") && p[:len("/static/")] == "/static/":
			name := p[len("/static/"):]
			if !fs.ValidPath(name) || name == "index.html" {
				setPageHeaders(w.Header())
				http.NotFound(w, r)
				return
			}
			serve(w, r, name)
		default:
			setPageHeaders(w.Header())
			http.NotFound(w, r)
		}
	})
}
