package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// An AnchorFile is a file outside the database to which every head the
// journal seals is appended, one JSON line each:
//
//	{"run":"r…","seq":42,"hash":"sha256:…","final":true,"time":"…","v":2,"sig":"…","key_id":"…"}
//
// The journal's writers only ever append to it (O_APPEND), so that the
// newest line of a run is its newest head even if the database is later
// rewritten: a stored head older than it, or different, shows a rollback
// that the signature alone cannot (see the package comment). It is only as
// good as where it is kept: someone who can rewrite the database and this
// file alike can roll both back. Keep it on another machine, a volume the
// database's users cannot write, or a file system with an append-only
// attribute (chattr +a), or ship its lines elsewhere as they are written.
type AnchorFile struct {
	Path string
}

// anchorLine is one line of an anchor file.
type anchorLine struct {
	Run     string    `json:"run"`
	Seq     int64     `json:"seq"`
	Hash    string    `json:"hash"`
	Final   bool      `json:"final"`
	Time    time.Time `json:"time"`
	Version int       `json:"v"`
	Sig     string    `json:"sig,omitempty"` // base64
	KeyID   string    `json:"key_id,omitempty"`
}

// Append writes heads at the end of the file, one line each, in one write,
// creating the file (mode 0600) if need be. With O_APPEND, processes
// sharing the file do not overwrite each other's lines.
func (a AnchorFile) Append(heads []Head) error {
	if len(heads) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, h := range heads {
		l := anchorLine{Run: h.RunID, Seq: h.Seq, Hash: "sha256:" + h.Hash.String(), Final: h.Final, Time: h.Sealed.UTC(), Version: h.Version, KeyID: h.KeyID}
		if l.Version == 0 {
			l.Version = HeadVersion
		}
		if h.Sig != nil {
			l.Sig = base64.StdEncoding.EncodeToString(h.Sig)
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit anchor: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("audit anchor %s: %w", a.Path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit anchor %s: %w", a.Path, err)
	}
	return nil
}

// Newest reads the file and returns the newest head of each run in it: the
// one of the highest seq, the last line of those (a run resumed after it
// ended is sealed again at the same seq, no longer final). A line that is
// not an anchored head is an error naming it.
func (a AnchorFile) Newest() (map[string]*Head, error) {
	f, err := os.Open(a.Path)
	if err != nil {
		return nil, fmt.Errorf("audit anchor: %w", err)
	}
	defer f.Close()
	heads := map[string]*Head{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		h, err := parseAnchorLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("audit anchor %s, line %d: %w", a.Path, n, err)
		}
		if old := heads[h.RunID]; old == nil || h.Seq >= old.Seq {
			heads[h.RunID] = h
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit anchor %s: %w", a.Path, err)
	}
	return heads, nil
}

func parseAnchorLine(b []byte) (*Head, error) {
	var l anchorLine
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("not a JSON head: %w", err)
	}
	if l.Run == "" || l.Seq <= 0 || (l.Version != 1 && l.Version != HeadVersion) {
		return nil, fmt.Errorf("not a head (run %q, seq %d, version %d)", l.Run, l.Seq, l.Version)
	}
	hash, err := ParseHash(l.Hash)
	if err != nil {
		return nil, err
	}
	h := &Head{RunID: l.Run, Seq: l.Seq, Hash: hash, Final: l.Final, Version: l.Version, KeyID: l.KeyID, Sealed: l.Time}
	if l.Sig != "" {
		if h.Sig, err = base64.StdEncoding.DecodeString(l.Sig); err != nil {
			return nil, fmt.Errorf("signature: %w", err)
		}
	}
	return h, nil
}
