package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/swarm"
)

func runApprovals(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "approvals", "[flags] [RUN_ID]")
	var sf storeFlags
	sf.register(fs)
	all := fs.Bool("all", false, "decided ones too, not only those waiting")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageErrorf("approvals takes at most one run id")
	}
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	runID := ""
	if fs.NArg() == 1 {
		jr, err := sess.findRun(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		runID = jr.ID
	}
	as, err := sess.store.Approvals(ctx, runID, *all)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]swarm.ApprovalView, 0, len(as))
		for _, a := range as {
			out = append(out, swarm.ViewApproval(a))
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(as) == 0 {
		fmt.Fprintln(env.Stderr, "nothing waits for approval")
		return nil
	}
	if runID != "" {
		// One run's: each in full, as a person deciding must read it
		// (what is approved is exactly what is shown).
		for i, a := range as {
			if i > 0 {
				fmt.Fprintln(env.Stdout)
			}
			fmt.Fprintf(env.Stdout, "── %s %s (%s, %s, asked %s, until %s)\n%s\n", a.Kind, a.ID, a.Status, a.RunID,
				a.Created.Local().Format("2006-01-02 15:04"), a.Deadline.Local().Format("2006-01-02 15:04"), termSafe(a.What))
			if a.By != "" {
				fmt.Fprintf(env.Stdout, "decided by %s%s\n", termSafe(a.By), termSafe(prefixed(": ", a.Note)))
			}
		}
		if !*all {
			id := "ID"
			if len(as) == 1 {
				id = as[0].ID
			}
			fmt.Fprintf(env.Stderr, "decide with: hive approve %s %s --yes (or --no) --note \"why\"\n", runID, id)
		}
		return nil
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RUN\tID\tKIND\tSTATUS\tASKED\tWHAT")
	for _, a := range as {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", a.RunID, a.ID, a.Kind, a.Status, a.Created.Local().Format("2006-01-02 15:04"), termSafe(shorten(oneLine(a.What), 70)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !*all {
		fmt.Fprintln(env.Stderr, "read one in full with: hive approvals RUN; decide with: hive approve RUN ID --yes (or --no) --note \"why\"")
	}
	return nil
}

// prefixed is p+s, or "" when s is.
func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func runApprove(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "approve", "[flags] RUN_ID APPROVAL_ID --yes|--no")
	var sf storeFlags
	sf.register(fs)
	yes := fs.Bool("yes", false, "allow it")
	no := fs.Bool("no", false, "refuse it")
	note := fs.String("note", "", "why, for the record (and, on a refusal, for the worker)")
	as := fs.String("as", "", "who decides, for the record (default: the user running hive)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *yes == *no {
		return usageErrorf("approve needs exactly one of --yes and --no")
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return usageErrorf("approve takes a run id and the approval's id (hive approvals RUN shows what waits, in full)")
	}
	who := *as
	if who == "" {
		who = env.Getenv("USER")
		if u, err := user.Current(); who == "" && err == nil {
			who = u.Username
		}
	}
	if who == "" {
		who = "someone"
	}
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	jr, err := sess.findRun(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	id := fs.Arg(1)
	if id == "" {
		// Never a guess: what waits may have changed since the person
		// read it, so a decision names what it decides.
		waiting, err := sess.store.Approvals(ctx, jr.ID, false)
		if err != nil {
			return err
		}
		if len(waiting) == 0 {
			return fmt.Errorf("run %s waits for no approval (hive approvals %s --all lists what was decided)", jr.ID, jr.ID)
		}
		ids := make([]string, len(waiting))
		for i, a := range waiting {
			ids[i] = a.ID
		}
		return usageErrorf("name the approval you decide: run %s waits for %s (hive approvals %s shows each in full)", jr.ID, strings.Join(ids, ", "), jr.ID)
	}
	status := journal.ApprovalApproved
	if *no {
		status = journal.ApprovalDenied
	}
	switch err := sess.store.Decide(ctx, jr.ID, id, status, *note, who); {
	case errors.Is(err, journal.ErrNotFound):
		return fmt.Errorf("run %s has no approval %q (hive approvals %s lists them)", jr.ID, id, jr.ID)
	case errors.Is(err, journal.ErrDecided):
		a, _ := sess.store.Approval(ctx, jr.ID, id)
		return fmt.Errorf("%s of run %s was already decided: %s by %s", id, jr.ID, a.Status, a.By)
	case err != nil:
		return err
	}
	next := "the run goes on within a second"
	switch jr.Status {
	case "interrupted", "cancelled":
		// Nothing runs it: the decision waits in the journal for it.
		next = fmt.Sprintf("the run is %s: continue it with hive resume %s", jr.Status, jr.ID)
	}
	fmt.Fprintf(env.Stdout, "%s %s of run %s as %s; %s\n", status, id, jr.ID, who, next)
	return nil
}
