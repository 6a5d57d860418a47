package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/hive-swarm/hive/internal/verify"
	"github.com/hive-swarm/hive/internal/workspace"
)

// Patches: a worker that changed its overlay submits, with its report, the
// overlay's unified diff as its artifact "patch" (NODE/patch); the lead
// sees it named in the worker's report, and a configured check
// ({kind: command}) runs against the workspace with the worker's changes.
//
// The lead's finish merges patches into the run's patch, the artifact
// lead/patch, which the user writes into the directory with hive apply
// (only if the directory is as the run found it). Which patches: those
// finish names (patches: [ids]), in that order; by default, that of every
// task that ended done with its check passed (or with no check), in the
// order of the tasks' ids. A failed task's patch, and one whose check was
// not a pass (unsure: the sandbox failed, say, and the task's policy let
// it stand), is merged only when named; the answer lists those left out. Patches that change the same lines of
// a file (or one deletes a file another changes) conflict, and then
// finish does not end the run: the lead gets a tool error that names each
// conflict, and resolves it (delegates a task that makes both changes,
// whose worker starts from the workspace, and names its patch in finish
// in place of the two; or leaves one out). In the lead's final turn
// (budget exhausted), where it cannot delegate, the merge keeps the
// earlier patch's changes to a conflicting file, and the answer says what
// was left out.

const (
	// patchName is the artifact name of a worker's patch.
	patchName = "patch"
	// RunPatch is the artifact id of a run's merged patch, which hive
	// apply writes into the workspace.
	RunPatch = "lead/patch"
)

// withPatch puts ov's changes into sub as its "patch" artifact, replacing
// any artifact of that name the model gave: in a run with a workspace,
// "patch" is what the worker changed, nothing else.
func withPatch(ov *workspace.Overlay, sub *verify.Submission) error {
	diff, err := ov.Diff()
	if err != nil {
		return err
	}
	arts := make(map[string]string, len(sub.Artifacts)+1)
	for k, v := range sub.Artifacts {
		if k != patchName {
			arts[k] = v
		}
	}
	if diff != "" {
		arts[patchName] = diff
	}
	sub.Artifacts = arts
	return nil
}

// PatchSummary says what a patch changes: "2 files, +5 -1: a.go, b.go".
func PatchSummary(diff string) string {
	p, err := workspace.ParsePatch("", diff)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return statOf(p)
}

func statOf(p workspace.Patch) string {
	add, del := p.Stat()
	paths := p.Paths()
	list := strings.Join(paths[:min(len(paths), 20)], ", ")
	if len(paths) > 20 {
		list += fmt.Sprintf(", … (%d more)", len(paths)-20)
	}
	return fmt.Sprintf("%s, +%d -%d: %s", plural(len(paths), "file"), add, del, list)
}

// workspaceLeadNote tells the lead how patches work, in a run with a
// workspace.
func workspaceLeadNote(spec Spec) string {
	if spec.Workspace == "" {
		return ""
	}
	return leadWorkspaceNote
}

const leadWorkspaceNote = "\n(The workers share a workspace, a directory they read and change in copies of their own. A worker that changed files reports its patch, an artifact you can read with read_artifact. " +
	"finish merges into the run's patch the patches of every task that ended done with its check passed, in task order, or those you name in its patches argument (name one whose check was unsure to merge it all the same); the user applies the run's patch to the directory. " +
	"Patches that change the same lines conflict: finish then fails and says where; resolve it by delegating a task that makes both changes, then finish naming its patch instead of the two, or by leaving one out.)"

// mergeRecord is a finish's merge as journaled: a resumed lead sees the
// same outcome whatever tasks have ended by then.
type mergeRecord struct {
	Patches   []string `json:"patches,omitempty"` // merged, in order
	Summary   string   `json:"summary,omitempty"`
	Conflicts []string `json:"conflicts,omitempty"`
	// LeftOut lists the patches of done tasks not merged by default, as
	// "ID (check OUTCOME)".
	LeftOut []string `json:"left_out,omitempty"`
	Refused string   `json:"refused,omitempty"` // why finish was refused
}

// mergePatches merges the patches a finish takes into the run's patch
// (once per key, journaled). It returns the text the lead's finish call
// gets, and refused when the run may not end yet: a conflict, or a patch
// named that does not exist. final (the lead's last turn) merges what
// merges and tells the rest in note, which the answer gets.
func (r *run) mergePatches(ctx context.Context, key string, named []string, final bool) (result, note string, refused bool) {
	var rec mergeRecord
	if data, ok, _ := r.journaled(key); !ok || json.Unmarshal(data, &rec) != nil {
		rec = r.merge(ctx, named, final)
		data, _ := json.Marshal(rec)
		if err := r.e.store.PutStep(ctx, r.id, key, data); err != nil {
			r.e.log.Warn("journal merge", "run", r.id, "key", key, "err", err)
		}
	}
	if rec.Refused != "" {
		return rec.Refused, "", true
	}
	if len(rec.LeftOut) > 0 {
		note = "\n\n[Patches left out, their checks not passed: " + strings.Join(rec.LeftOut, ", ") + "; finish's patches argument may name one to merge it]"
	}
	if len(rec.Patches) == 0 {
		if note != "" {
			return "finished; no patch merged, so the run has no patch" + note, note, false
		}
		return "finished; no worker changed the workspace, so the run has no patch", "", false
	}
	result = fmt.Sprintf("finished; merged %s (%s) into the run's patch %s: %s", plural(len(rec.Patches), "patch"), strings.Join(rec.Patches, ", "), RunPatch, rec.Summary)
	if len(rec.Conflicts) > 0 {
		note += "\n\n[The run's patch leaves out conflicting changes: " + strings.Join(rec.Conflicts, "; ") + "]"
	}
	return result + note, note, false
}

// merge does mergePatches' work.
func (r *run) merge(ctx context.Context, named []string, final bool) mergeRecord {
	ids := named
	var leftOut []string
	if len(ids) == 0 {
		ids, leftOut = r.donePatches()
	}
	var patches []workspace.Patch
	for _, id := range ids {
		_, _, content, err := r.e.store.Artifact(ctx, r.id, id)
		if err != nil || !r.isPatch(id) {
			return mergeRecord{Refused: fmt.Sprintf("no patch %q: patches names patch artifacts of this run (NODE/patch), as the workers' reports give them; the run did not end", id)}
		}
		p, err := workspace.ParsePatch(id, string(content))
		if err == nil && r.ws != nil {
			// What hive apply would refuse is refused now: a hidden path,
			// or another name of one on some file system.
			err = r.ws.CheckPatch(p)
		}
		if err != nil {
			return mergeRecord{Refused: fmt.Sprintf("patch %s cannot be read: %v; leave it out of patches", id, err)}
		}
		patches = append(patches, p)
	}
	if len(patches) == 0 {
		return mergeRecord{LeftOut: leftOut}
	}
	merged, conflicts := workspace.Merge(patches...)
	var cs []string
	for _, c := range conflicts {
		cs = append(cs, c.String())
	}
	if len(conflicts) > 0 && !final {
		return mergeRecord{Refused: "the run did not end: its patches conflict. " + strings.Join(cs, "; ") +
			". Resolve it: delegate a task that makes both changes (its worker starts from the workspace; give it what each patch does), then finish with patches naming its patch in place of the two; or finish with patches leaving one out."}
	}
	merged.Name = "run"
	if err := r.e.store.PutArtifact(ctx, r.id, RunPatch, "lead", patchName, []byte(merged.String())); err != nil {
		return mergeRecord{Refused: "the run's patch could not be stored: " + err.Error() + "; call finish again"}
	}
	r.publish(Event{Type: EventArtifact, Text: RunPatch})
	return mergeRecord{Patches: ids, Summary: statOf(merged), Conflicts: cs, LeftOut: leftOut}
}

// isPatch reports whether id is the patch Hive made of some worker's
// changes: only those are merged, never an artifact a model named so.
func (r *run) isPatch(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ns := range r.nodes {
		if res := ns.result; res != nil && res.Patch == id {
			return true
		}
	}
	return false
}

// donePatches returns the patches of the tasks that ended done, in the
// order of their nodes' ids: those whose check passed, or that had none,
// and, apart, those whose check did not pass (as "ID (check OUTCOME)").
func (r *run) donePatches() (ids, leftOut []string) {
	r.mu.Lock()
	outcome := map[string]string{} // of the patches left out
	for _, ns := range r.nodes {
		res := ns.result
		switch {
		case res == nil || res.Status != StatusDone || res.Patch == "":
		case res.Verdict != nil && res.Verdict.Outcome != verify.Pass:
			outcome[res.Patch] = res.Verdict.Outcome
		default:
			ids = append(ids, res.Patch)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(ids, compareIDs)
	for _, id := range slices.SortedFunc(maps.Keys(outcome), compareIDs) {
		leftOut = append(leftOut, fmt.Sprintf("%s (check %s)", id, outcome[id]))
	}
	return ids, leftOut
}

// compareIDs orders node ids (and the artifact ids they start) as a tree
// is read: "2" before "10", "3" before "3.1", "3.1" before "3^1".
func compareIDs(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '^' || r == '/' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		switch {
		case ea == nil && eb == nil && na != nb:
			return na - nb
		case (ea != nil || eb != nil) && pa[i] != pb[i]:
			return strings.Compare(pa[i], pb[i])
		}
	}
	if len(pa) != len(pb) {
		return len(pa) - len(pb)
	}
	return strings.Compare(a, b)
}
