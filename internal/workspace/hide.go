package workspace

import (
	"bufio"
	"io"
	"path"
	"strings"
	"unicode"

	"github.com/bmatcuk/doublestar/v4"
	// go-git's matcher, not github.com/sabhiram/go-gitignore: it is
	// maintained, and follows git in giving each .gitignore the directory
	// it sits in as its domain. Its package pulls in only go-billy, gcfg
	// and two small modules.
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// secretNames are globs of the names of files that commonly hold secrets,
// matched against the folded name (see [fold]) of every element of a path.
var secretNames = []string{
	".env", ".env.*",
	"*.pem", "*.key", "*.p12", "*.pfx",
	"id_rsa*", "id_ed25519*", "id_ecdsa*", "id_dsa*",
	".netrc", ".npmrc", ".pypirc", ".pgpass", ".git-credentials",
	"credentials*.json", "credentials", ".envrc", ".dev.vars", "*.tfvars", "*.tfstate", "*.tfstate.*",
	"*.keystore", "*.jks", ".htpasswd", "secrets.yml", "secrets.yaml", "service-account*.json",
	".aws", ".kube", ".docker", ".ssh", ".gnupg",
}

// isGitDir reports whether a path element names the repository's .git,
// on any file system: compared folded (see [fold]), so that .GIT, ".git."
// and ".git\u200c" name it too, and GIT~1, its Windows short name.
func isGitDir(e string) bool {
	f := fold(e)
	return f == ".git" || f == "git~1"
}

// fold returns the path element e as the most lenient file system in use
// compares names, so that two elements that some file system takes for
// the same name fold to the same string: case folded (NTFS, APFS and
// HFS+ ignore case; every rune maps to the least rune of its Unicode
// folding orbit, lower-cased, so that "ſ" and "K" (Kelvin) fold as "s"
// and "k" do), without Unicode default-ignorable code points such as
// U+200C, U+200D and U+FEFF (HFS+ skips some of them), without what
// follows a colon (on NTFS, "NAME:STREAM" and "NAME::$INDEX_ALLOCATION"
// are streams of NAME), and without trailing dots and spaces (Windows
// drops them). Hiding compares folded names, so that no alias of a
// hidden name gets past it.
func fold(e string) string {
	if i := strings.IndexByte(e, ':'); i >= 0 {
		e = e[:i]
	}
	return strings.TrimRight(foldRunes(e), ". ")
}

// ignorable reports whether r is a Unicode default-ignorable code point,
// or near enough: a format character (Cf, which holds the zero-width
// joiners, the bidirectional marks and the byte order mark), a variation
// selector, or another default-ignorable code point (the Hangul fillers,
// U+034F). It errs on the side of ignoring: a name folded too far only
// hides more.
func ignorable(r rune) bool {
	return r >= 0x80 && (unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r))
}

// foldPath folds each element of the slash-separated path p.
func foldPath(p string) string {
	elems := split(p)
	for i, e := range elems {
		elems[i] = fold(e)
	}
	return join(elems)
}

// foldRunes folds s as [fold] folds a name, but for trailing dots and
// spaces: case and ignorable code points. It folds Hide globs, which may
// end in a dot.
func foldRunes(s string) string {
	var b strings.Builder
	for _, r := range s {
		if ignorable(r) {
			continue
		}
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(unicode.ToLower(least))
	}
	return b.String()
}

// maxIgnoreFile bounds the bytes read of one .gitignore.
const maxIgnoreFile = 1 << 20

// visibility says whether a path is visible, and if not, why.
type visibility int

const (
	visible visibility = iota
	hiddenGit
	hiddenSecret
	hiddenIgnored
)

// visible reports whether the clean path p is visible; isDir says whether
// p is a directory.
func (w *Workspace) visible(p string, isDir bool) bool { return w.why(p, isDir) == visible }

// why says whether the clean path p is visible, and if not, why. A path
// is hidden when an element of it is .git, when it or a directory above it
// is a secret (unless Show names it literally), or when it or a directory
// above it is ignored by a .gitignore (unless a Show glob matches it or a
// directory above it). As in git, a .gitignore cannot bring back a path
// under an ignored directory.
func (w *Workspace) why(p string, isDir bool) visibility {
	elems := split(p)
	for _, e := range elems {
		if isGitDir(e) {
			return hiddenGit
		}
	}
	if w.secretPath(p) {
		return hiddenSecret
	}
	for i := range elems {
		if !w.ignored(elems[:i+1], isDir || i < len(elems)-1) {
			continue
		}
		for j := range elems {
			if w.shown(join(elems[:j+1])) {
				return visible
			}
		}
		return hiddenIgnored
	}
	return visible
}

// secret reports whether the path q, whose last element is name, is a
// secret: a built-in name or a Hide glob. Names are compared folded (see
// [fold]): .ENV, ".env." and ".e\u200dnv" are secrets as .env is, since
// some file system takes them for it.
func (w *Workspace) secret(q, name string) bool {
	folded := fold(name)
	if shortName(folded) {
		return true // a Windows short name may stand for any secret
	}
	for _, g := range secretNames {
		if ok, _ := path.Match(g, folded); ok {
			return true
		}
	}
	fq := foldPath(q)
	for i, g := range w.hide {
		if doublestar.MatchUnvalidated(g, q) || doublestar.MatchUnvalidated(w.hideFolded[i], fq) {
			return true
		}
	}
	return false
}

// shownLiterally reports whether a Show entry without wildcards names the
// path q, whose last element is name (an entry without a slash names a
// name at any depth).
func (w *Workspace) shownLiterally(q, name string) bool {
	for _, s := range w.opts.Show {
		s = strings.TrimSuffix(strings.TrimPrefix(s, "/"), "/")
		if strings.ContainsAny(s, `*?[]{}\`) {
			continue
		}
		if s == q || (!strings.Contains(s, "/") && s == name) {
			return true
		}
	}
	return false
}

// shown reports whether a Show glob matches the path q.
func (w *Workspace) shown(q string) bool {
	for _, g := range w.show {
		if doublestar.MatchUnvalidated(g, q) {
			return true
		}
	}
	return false
}

// mayShowBelow reports whether a Show glob may match a path under the
// directory dir, so that a walk must look inside dir even when dir itself
// is ignored.
func (w *Workspace) mayShowBelow(dir string) bool {
	for _, g := range w.show {
		base, _ := doublestar.SplitPattern(g)
		if base == "." || base == dir || strings.HasPrefix(base, dir+"/") || strings.HasPrefix(dir, base+"/") {
			return true
		}
	}
	return false
}

// ignored reports whether the .gitignore files (and .git/info/exclude)
// ignore the path of elements elems, a directory if isDir. Only the
// .gitignore files of the directories above the path count, as in git.
func (w *Workspace) ignored(elems []string, isDir bool) bool {
	var ps []gitignore.Pattern // a new slice: the cached ones are shared
	ps = append(ps, w.ignoreFile(".git/info/exclude", nil)...)
	for i := range elems {
		dir := elems[:i]
		ps = append(ps, w.ignoreFile(path.Join(join(dir), ".gitignore"), dir)...)
	}
	return len(ps) > 0 && gitignore.NewMatcher(ps).Match(elems, isDir)
}

// ignoreFile returns the patterns of the ignore file at p, whose domain is
// the directory of elements dir; none when there is no such file. Each
// file is read once, the first time it is needed.
func (w *Workspace) ignoreFile(p string, dir []string) []gitignore.Pattern {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ps, ok := w.ignores[p]; ok {
		return ps
	}
	var ps []gitignore.Pattern
	if f, _, err := w.openRegular(p); err == nil {
		sc := bufio.NewScanner(io.LimitReader(f, maxIgnoreFile))
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			if line != "" && !strings.HasPrefix(line, "#") && strings.TrimSpace(line) != "" {
				ps = append(ps, gitignore.ParsePattern(line, dir))
			}
		}
		f.Close()
	}
	w.ignores[p] = ps
	return ps
}

// doublestarValid reports whether g is a well-formed glob.
func doublestarValid(g string) bool { return doublestar.ValidatePattern(g) }

// secretPath reports whether the clean path p, or a directory above it,
// is a secret that Show does not name literally.
func (w *Workspace) secretPath(p string) bool {
	elems := split(p)
	for i, e := range elems {
		q := join(elems[:i+1])
		if w.secret(q, e) && !w.shownLiterally(q, e) {
			return true
		}
	}
	return false
}
