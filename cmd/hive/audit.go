package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hive-swarm/hive/internal/audit"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/swarm"
)

const auditUsage = `Usage: hive audit SUBCOMMAND

Every event of every run is chained in the journal: each event's link is a
SHA-256 over the link before it and the event, and each run's head (its
last link) is signed when [audit] signing_key names a key.

  verify RUN_ID... | --all   check the chains; name the first event that was
                             edited, deleted or moved, or appended after the
                             run ended, and any head that does not match, is
                             not signed by the key, was sealed before a run
                             that ended did, or is older than the one in the
                             anchor file ([audit] anchor_file, --anchor)
  head RUN_ID                print a run's head, to keep where the journal's
                             writers cannot reach (verify --head checks it)
  export RUN_ID... | --all   write the events, links and heads as JSONL
  keygen FILE                make an Ed25519 key pair: FILE and FILE.pub`

func runAudit(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(env.Stderr, auditUsage)
		return usageErrorf("audit: missing subcommand (want verify, head, export or keygen)")
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, env, args[1:])
	case "head":
		return runAuditHead(ctx, env, args[1:])
	case "export":
		return runAuditExport(ctx, env, args[1:])
	case "keygen":
		return runAuditKeygen(env, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(env.Stdout, auditUsage)
		return nil
	}
	return usageErrorf("audit: unknown subcommand %q (want verify, head, export or keygen)", args[0])
}

// auditRuns resolves the runs a subcommand names: ids or unique prefixes
// of runs the journal holds anything of, or that are in also, or every one
// with --all.
func auditRuns(ctx context.Context, sess *session, fs *flag.FlagSet, all bool, also ...string) ([]string, error) {
	known, err := sess.store.AuditRuns(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range also {
		if !slices.Contains(known, id) {
			known = append(known, id)
		}
	}
	slices.Sort(known)
	if all {
		if fs.NArg() > 0 {
			return nil, usageErrorf("give run ids or --all, not both")
		}
		return known, nil
	}
	if fs.NArg() == 0 {
		return nil, usageErrorf("name a run (hive runs lists them), or give --all")
	}
	var ids []string
	for _, arg := range fs.Args() {
		if slices.Contains(known, arg) {
			ids = append(ids, arg)
			continue
		}
		var match []string
		for _, id := range known {
			if strings.HasPrefix(id, arg) {
				match = append(match, id)
			}
		}
		switch len(match) {
		case 0:
			return nil, fmt.Errorf("no run %q in the journal (hive runs lists them)", arg)
		case 1:
			ids = append(ids, match[0])
		default:
			return nil, fmt.Errorf("%q is the start of %d runs: give more of the id", arg, len(match))
		}
	}
	return ids, nil
}

// auditKey is the public key heads are checked with: --key, [audit]
// public_key, or the public half of [audit] signing_key; nil when none.
func auditKey(sess *session, flagKey string) (ed25519.PublicKey, error) {
	for _, p := range []string{flagKey, sess.cfg.Audit.PublicKey, sess.cfg.Audit.SigningKey} {
		if p != "" {
			return audit.LoadPublicKey(p)
		}
	}
	return nil, nil
}

// verifyRun checks one run's chain; c.Head and c.Ended are filled in from
// the journal.
func verifyRun(ctx context.Context, sess *session, id string, c audit.Check) (audit.Report, error) {
	head, err := sess.store.AuditHead(ctx, id)
	if err != nil {
		return audit.Report{}, err
	}
	c.Head = head
	jr, err := sess.store.Run(ctx, id)
	noRow := errors.Is(err, journal.ErrNotFound) || (err == nil && jr.ID != id)
	if err != nil && !noRow {
		return audit.Report{}, err
	}
	c.Ended = !noRow && swarm.Status(jr.Status).Final()
	v := audit.NewVerifier(id, c)
	if err := sess.store.AuditRows(ctx, id, v.Add); err != nil {
		return audit.Report{}, err
	}
	rep, err := v.Finish()
	if err == nil && rep.Problem == nil && noRow && rep.Events > 0 {
		// Hive writes a run's row before its first event: without it,
		// whether the run ended cannot be told.
		rep.Problem = &audit.Problem{Reason: "the journal holds events of the run but not its row: it was deleted"}
	}
	return rep, err
}

type auditVerdict struct {
	Run         string `json:"run"`
	OK          bool   `json:"ok"`
	Events      int    `json:"events"`
	Unchained   int    `json:"unchained,omitempty"`
	Sealed      int64  `json:"sealed"`
	Final       bool   `json:"final"`
	HeadVersion int    `json:"head_version,omitempty"`
	Signed      bool   `json:"signed"`
	Anchored    int64  `json:"anchored,omitempty"`
	Head        string `json:"head,omitempty"`
	BadEvent    int64  `json:"bad_event,omitempty"`
	Problem     string `json:"problem,omitempty"`
}

// anchoredHeads reads the newest head of each run from the anchor file,
// --anchor or [audit] anchor_file; nil when there is none. A configured
// file that does not exist yet is said on stderr: nothing was anchored.
func anchoredHeads(env *Env, sess *session, flagPath string) (map[string]*audit.Head, error) {
	path := flagPath
	if path == "" {
		path = sess.cfg.Audit.AnchorFile
	}
	if path == "" {
		return nil, nil
	}
	heads, err := audit.AnchorFile{Path: path}.Newest()
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(env.Stderr, "hive: the anchor file %s does not exist: no head was checked against it (Hive creates it when it seals a head)\n", path)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return heads, nil
}

func runAuditVerify(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "audit verify", "[flags] RUN_ID... | --all")
	var sf storeFlags
	sf.register(fs)
	all := fs.Bool("all", false, "verify every run in the journal, and every run the anchor file holds a head of")
	keyFile := fs.String("key", "", "the public key heads must be signed by (default: [audit] public_key, else the public half of [audit] signing_key)")
	kept := fs.String("head", "", "a head you kept (hive audit head): the run's chain must pass through it; one run only")
	anchorFile := fs.String("anchor", "", "the anchor file to check each run's head against (default: [audit] anchor_file)")
	asJSON := fs.Bool("json", false, "print a JSON array of verdicts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	anchored, err := anchoredHeads(env, sess, *anchorFile)
	if err != nil {
		return err
	}
	// A run deleted from the journal altogether is still in the anchor.
	ids, err := auditRuns(ctx, sess, fs, *all, slices.Collect(maps.Keys(anchored))...)
	if err != nil {
		return err
	}
	key, err := auditKey(sess, *keyFile)
	if err != nil {
		return err
	}
	var check audit.Check
	check.Key = key
	if *kept != "" {
		if len(ids) != 1 {
			return usageErrorf("--head checks one run; name exactly one")
		}
		h, err := audit.ParseHash(*kept)
		if err != nil {
			return usageErrorf("--head: %v", err)
		}
		check.Kept = &h
	}
	var verdicts []auditVerdict
	bad := 0
	for _, id := range ids {
		c := check
		c.Anchored = anchored[id]
		rep, err := verifyRun(ctx, sess, id, c)
		v := auditVerdict{Run: id, Events: rep.Events, Unchained: rep.Unchained, Sealed: rep.Sealed, Final: rep.Final,
			HeadVersion: rep.HeadVersion, Signed: rep.Signed, Anchored: rep.Anchored}
		switch {
		case errors.Is(err, audit.ErrNoChain):
			v.OK, v.Problem = true, "not chained: its events were journaled before links were kept"
		case err != nil:
			return err
		case rep.Problem != nil:
			v.BadEvent, v.Problem = rep.Problem.Seq, rep.Problem.Reason
			bad++
		default:
			v.OK, v.Head = true, "sha256:"+rep.Last.String()
		}
		verdicts = append(verdicts, v)
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if verdicts == nil {
			verdicts = []auditVerdict{}
		}
		if err := enc.Encode(verdicts); err != nil {
			return err
		}
	} else {
		for _, v := range verdicts {
			fmt.Fprintln(env.Stdout, v.line())
		}
		if len(verdicts) == 0 {
			fmt.Fprintln(env.Stderr, "no runs in the journal")
		}
		if key == nil && anchored == nil && bad == 0 && len(verdicts) > 0 {
			fmt.Fprintln(env.Stderr, "hive: no key checked the heads: anyone who can write the journal could rewrite a run and its head alike. Set [audit] signing_key (hive audit keygen), or keep each run's head (hive audit head) and check it with --head, or set [audit] anchor_file.")
		}
	}
	if bad > 0 {
		if !*asJSON {
			fmt.Fprintf(env.Stderr, "hive: %d of %d runs failed verification\n", bad, len(verdicts))
		}
		return &exitError{code: 1, err: errSilent}
	}
	return nil
}

func (v auditVerdict) line() string {
	switch {
	case !v.OK && v.BadEvent > 0:
		return fmt.Sprintf("%s: TAMPERED at event %d: %s", v.Run, v.BadEvent, v.Problem)
	case !v.OK:
		return fmt.Sprintf("%s: TAMPERED: %s", v.Run, v.Problem)
	case v.Problem != "":
		return fmt.Sprintf("%s: %d events, %s", v.Run, v.Events, v.Problem)
	}
	s := fmt.Sprintf("%s: ok, %d events", v.Run, v.Events)
	if v.Unchained > 0 {
		s += fmt.Sprintf(" (the first %d predate the chain)", v.Unchained)
	}
	switch {
	case v.Sealed == 0:
		s += ", no head yet"
	case v.HeadVersion == 1:
		s += fmt.Sprintf(", sealed through event %d by a v1 head (it does not say whether the run had ended)", v.Sealed)
	case v.Final:
		s += fmt.Sprintf(", sealed through event %d, final", v.Sealed)
	default:
		s += fmt.Sprintf(", sealed through event %d, open", v.Sealed)
	}
	switch {
	case v.Sealed == 0:
	case v.Signed:
		s += ", signature good"
	default:
		s += ", unsigned"
	}
	if v.Anchored > 0 {
		s += fmt.Sprintf(", anchored through event %d", v.Anchored)
	}
	return s
}

func runAuditHead(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "audit head", "[flags] RUN_ID")
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("audit head takes one run id")
	}
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	ids, err := auditRuns(ctx, sess, fs, false)
	if err != nil {
		return err
	}
	h, err := sess.store.AuditHead(ctx, ids[0])
	if err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("run %s has no head yet: it is sealed when it ends or its journal is flushed", ids[0])
	}
	state := ""
	switch {
	case h.Version == 1:
	case h.Final:
		state = " final"
	default:
		state = " open"
	}
	fmt.Fprintf(env.Stdout, "%s sha256:%s event %d%s\n", h.RunID, h.Hash, h.Seq, state)
	return nil
}

// An exported line: an event with its link, or a run's head.
type auditLine struct {
	Run   string          `json:"run"`
	Seq   int64           `json:"seq,omitempty"`
	Link  string          `json:"link,omitempty"`
	Event json.RawMessage `json:"event,omitempty"`
	Head  *auditHeadJSON  `json:"head,omitempty"`
}

type auditHeadJSON struct {
	Seq     int64  `json:"seq"`
	Hash    string `json:"hash"`
	Final   bool   `json:"final"`
	Version int    `json:"v"`
	Sig     string `json:"sig,omitempty"` // base64
	KeyID   string `json:"key_id,omitempty"`
}

func runAuditExport(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "audit export", "[flags] RUN_ID... | --all")
	var sf storeFlags
	sf.register(fs)
	all := fs.Bool("all", false, "export every run in the journal")
	out := fs.String("out", "", "write to this file (created; never overwritten) instead of stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	ids, err := auditRuns(ctx, sess, fs, *all)
	if err != nil {
		return err
	}
	var w io.Writer = env.Stdout
	var f *os.File
	if *out != "" {
		f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s already exists: give another --out, or remove it first", *out)
			}
			return err
		}
		w = f
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	n := 0
	for _, id := range ids {
		err := sess.store.AuditRows(ctx, id, func(r audit.Row) error {
			l := auditLine{Run: id, Seq: r.Seq, Event: r.Data}
			if r.Link != nil {
				l.Link = hex.EncodeToString(r.Link)
			}
			if !json.Valid(r.Data) {
				l.Event, _ = json.Marshal(string(r.Data))
			}
			n++
			return enc.Encode(l)
		})
		if err != nil {
			return err
		}
		h, err := sess.store.AuditHead(ctx, id)
		if err != nil {
			return err
		}
		if h != nil {
			hj := &auditHeadJSON{Seq: h.Seq, Hash: h.Hash.String(), Final: h.Final, Version: h.Version, KeyID: h.KeyID}
			if h.Sig != nil {
				hj.Sig = base64.StdEncoding.EncodeToString(h.Sig)
			}
			if err := enc.Encode(auditLine{Run: id, Head: hj}); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "wrote %d events of %d runs to %s\n", n, len(ids), *out)
	}
	return nil
}

func runAuditKeygen(env *Env, args []string) error {
	fs := newFlags(env, "audit keygen", "FILE")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("audit keygen takes the file to write the private key to (the public key goes to FILE.pub)")
	}
	path, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	pub, err := audit.GenerateKey(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s (private, mode 0600) and %s.pub; key id %s\nadd to hive.toml:\n\n[audit]\nsigning_key = %q\n", path, path, audit.KeyID(pub), path)
	return nil
}
