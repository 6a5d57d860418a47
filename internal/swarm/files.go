package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/workspace"
)

// A run with a workspace gives its workers five tools over it: three that
// read (list_files, read_file, grep) and two that change a worker's own
// overlay (write_file, edit_file), never the directory itself. What a
// worker changed goes with its submission as a patch. Everything the tools
// take is a model's choice, and package workspace keeps it inside the
// tree: no path outside it, through a link out of it, or hidden (.git,
// what .gitignore ignores, secrets).
//
// Each call is a journaled step (key NODE/tool-ATTEMPT-N), as run_code's
// are: a resumed run reads a read's result back rather than reading again
// (DIR may have changed since), and puts a write's change back into the
// worker's new overlay from the journal (workspace.Change) rather than
// doing the edit again.
//
// Repairs continue in the same overlay: the worker fixes its own changes.
// A task escalated to a stronger tier starts from a fresh overlay over the
// workspace, with the earlier attempt's patch in its prompt as evidence.

// The workspace tools' names.
const (
	toolListFiles = "list_files"
	toolReadFile  = "read_file"
	toolGrep      = "grep"
	toolWriteFile = "write_file"
	toolEditFile  = "edit_file"
)

// maxToolOutput caps what a tool returns to a model, in bytes.
const maxToolOutput = 64 << 10

var (
	listFilesTool = tool(toolListFiles, "List files and directories of the workspace (with your changes), under path (default the root). recursive lists the whole tree below; glob keeps matching paths (\"*.go\", \"src/**/*.ts\").",
		`{"type":"object","properties":{"path":{"type":"string"},"recursive":{"type":"boolean"},"glob":{"type":"string"}}}`)
	readFileTool = tool(toolReadFile, "Read a text file of the workspace (with your changes): lines start_line to end_line, 1-based and inclusive (default: from the start, as many as fit).",
		`{"type":"object","properties":{"path":{"type":"string"},"start_line":{"type":"integer"},"end_line":{"type":"integer"}},"required":["path"]}`)
	grepTool = tool(toolGrep, "Search the workspace's text files (with your changes) for lines matching a regular expression (RE2 syntax). path narrows the search to a directory or a file, glob to matching paths (\"*.go\").",
		`{"type":"object","properties":{"pattern":{"type":"string"},"path":{"type":"string"},"glob":{"type":"string"},"ignore_case":{"type":"boolean"}},"required":["pattern"]}`)
	writeFileTool = tool(toolWriteFile, "Write the whole content of a file in your copy of the workspace, creating it if need be. The real directory is never changed: your changes are submitted as a patch.",
		`{"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]}`)
	editFileTool = tool(toolEditFile, "Replace old_string with new_string in a file of your copy of the workspace. old_string must occur exactly once (copy it exactly, with its whitespace), unless replace_all replaces every occurrence; an empty old_string creates a new file with new_string.",
		`{"type":"object","properties":{"path":{"type":"string"},"old_string":{"type":"string"},"new_string":{"type":"string"},"replace_all":{"type":"boolean"}},"required":["path","old_string","new_string"]}`)
)

// workspaceTools are the tools of a worker in a run with a workspace.
var workspaceTools = []llm.Tool{listFilesTool, readFileTool, grepTool, writeFileTool, editFileTool}

// workspaceNote tells a worker what its workspace tools do.
const workspaceNote = ` You have a workspace: a directory tree to read with list_files, read_file and grep, and to change with write_file and edit_file. ` +
	`Your changes go into your own copy, never the directory itself; when you submit, they go with your report as a patch (a unified diff) that is checked and merged by the lead. ` +
	`run_code runs in a copy of the workspace with your changes (what the code writes there is discarded).`

type listFilesArgs struct {
	Path      string `json:"path,omitempty"`
	Recursive bool   `json:"recursive,omitempty"`
	Glob      string `json:"glob,omitempty"`
}

type readFileArgs struct {
	Path      string `json:"path"`
	StartLine int    `json:"start_line,omitempty"`
	EndLine   int    `json:"end_line,omitempty"`
}

type grepArgs struct {
	Pattern    string `json:"pattern"`
	Path       string `json:"path,omitempty"`
	Glob       string `json:"glob,omitempty"`
	IgnoreCase bool   `json:"ignore_case,omitempty"`
}

type writeFileArgs struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

type editFileArgs struct {
	Path       string `json:"path"`
	OldString  string `json:"old_string"`
	NewString  string `json:"new_string"`
	ReplaceAll bool   `json:"replace_all,omitempty"`
}

// maxJournaledWrites bounds the bytes of file changes one node journals:
// twice what its overlay may hold, so that a task that rewrites files as
// it works is not stopped, and one that rewrites a big file for ever is.
const maxJournaledWrites = 2 * workspace.DefaultMaxOverlayBytes

// toolRecord is a tool call as journaled: what the model was told, and for
// a write the change it left in the overlay.
type toolRecord struct {
	Output string `json:"output"`
	IsErr  bool   `json:"is_err,omitempty"`
	// Change is the file a write_file or edit_file left changed, whole.
	Change *workspace.Change `json:"change,omitempty"`
	// Millis is how long the call took.
	Millis int64 `json:"ms,omitempty"`
	// Artifact holds the whole output when Output was cut (MCP tools).
	Artifact string `json:"artifact,omitempty"`
}

// isFileTool reports whether name is one of the workspace tools.
func isFileTool(name string) bool {
	switch name {
	case toolListFiles, toolReadFile, toolGrep, toolWriteFile, toolEditFile:
		return true
	}
	return false
}

// fileTool runs a workspace tool call in ov, once per key (journaled).
func (r *run) fileTool(ctx context.Context, ns *nodeState, key string, ov *workspace.Overlay, c llm.ToolCall, rule *ToolRule) toolOutcome {
	if data, ok, _ := r.journaled(key); ok {
		var rec toolRecord
		if json.Unmarshal(data, &rec) == nil {
			if rec.Change != nil {
				r.mu.Lock()
				ns.journaledWrites += int64(len(rec.Change.Content))
				r.mu.Unlock()
				if err := ov.Restore(*rec.Change); err != nil {
					// The journal holds what the change was; a workspace
					// that now hides its path cannot take it back.
					r.anomaly(ns, fmt.Sprintf("a journaled change to %s could not be restored: %v", rec.Change.Path, err), true)
				}
			}
			r.toolDone(ns, time.Duration(rec.Millis)*time.Millisecond, rec.IsErr)
			return toolOutcome{content: rec.Output, isErr: rec.IsErr}
		}
	}
	if c.Name == toolWriteFile || c.Name == toolEditFile {
		r.mu.Lock()
		over := ns.journaledWrites >= maxJournaledWrites
		r.mu.Unlock()
		if over {
			// Each write is journaled whole: without a bound, a model
			// rewriting a big file call after call fills the disk.
			return toolOutcome{content: fmt.Sprintf("this task has written %d MiB of file changes, the most one task may: submit what you have", maxJournaledWrites>>20), isErr: true}
		}
	}
	start := time.Now()
	rec, err := r.doFileTool(ctx, ov, c, rule)
	if err != nil {
		var pe *workspace.PathError
		if !errors.As(err, &pe) && ctx.Err() != nil {
			// Cancelled: not the model's doing, and not journaled.
			return toolOutcome{content: c.Name + " was cancelled", isErr: true}
		}
		var bad badArgsError
		if errors.As(err, &bad) {
			return toolOutcome{content: err.Error(), isErr: true, malformed: true}
		}
		rec = toolRecord{Output: err.Error(), IsErr: true}
	}
	// Redacted before it is cut, so that no half of a secret is left.
	rec.Output = capText(r.e.opts.Redact.String(rec.Output), maxToolOutput)
	rec.Millis = time.Since(start).Milliseconds()
	r.toolDone(ns, time.Since(start), rec.IsErr)
	if rec.Change != nil {
		r.mu.Lock()
		ns.journaledWrites += int64(len(rec.Change.Content))
		r.mu.Unlock()
	}
	data, _ := json.Marshal(rec)
	if err := r.e.store.PutStep(ctx, r.id, key, data); err != nil {
		r.e.log.Warn("journal tool call", "run", r.id, "key", key, "err", err)
	}
	return toolOutcome{content: rec.Output, isErr: rec.IsErr}
}

// badArgsError is arguments that do not parse: the model's mistake, told
// to it and not journaled.
type badArgsError struct{ error }

// doFileTool runs one workspace tool call. An error is what the model is
// told went wrong.
func (r *run) doFileTool(ctx context.Context, ov *workspace.Overlay, c llm.ToolCall, rule *ToolRule) (toolRecord, error) {
	parse := func(v any) error {
		if err := decodeArgs(c, v); err != nil {
			return badArgsError{err}
		}
		return nil
	}
	switch c.Name {
	case toolListFiles:
		var a listFilesArgs
		if err := parse(&a); err != nil {
			return toolRecord{}, err
		}
		res, err := ov.List(ctx, a.Path, workspace.ListOptions{Recursive: a.Recursive, Glob: a.Glob})
		if err != nil {
			return toolRecord{}, err
		}
		res.Entries = slices.DeleteFunc(res.Entries, func(e workspace.Entry) bool {
			return e.Type != "dir" && (!rule.readable(e.Path) || e.Target != "" && !rule.readable(e.Target))
		})
		return toolRecord{Output: res.String()}, nil
	case toolReadFile:
		var a readFileArgs
		if err := parse(&a); err != nil {
			return toolRecord{}, err
		}
		if err := r.checkRead(rule, a.Path); err != nil {
			return toolRecord{Output: err.Error() + ": read only the files you may", IsErr: true}, nil
		}
		res, err := ov.Read(ctx, a.Path, a.StartLine, a.EndLine)
		if err != nil {
			return toolRecord{}, err
		}
		return toolRecord{Output: res.String()}, nil
	case toolGrep:
		var a grepArgs
		if err := parse(&a); err != nil {
			return toolRecord{}, err
		}
		res, err := ov.Grep(ctx, a.Pattern, workspace.GrepOptions{Path: a.Path, Glob: a.Glob, IgnoreCase: a.IgnoreCase})
		if err != nil {
			return toolRecord{}, err
		}
		res.Matches = slices.DeleteFunc(res.Matches, func(m workspace.Match) bool { return !rule.readable(m.Path) })
		return toolRecord{Output: res.String()}, nil
	case toolWriteFile:
		var a writeFileArgs
		if err := parse(&a); err != nil {
			return toolRecord{}, err
		}
		if err := r.checkWrite(rule, a.Path); err != nil {
			return toolRecord{Output: err.Error() + ": change only the files you may", IsErr: true}, nil
		}
		if err := ov.Write(a.Path, a.Content); err != nil {
			return toolRecord{}, err
		}
		return changed(ov, a.Path, fmt.Sprintf("wrote %s (%d bytes) in your copy of the workspace", a.Path, len(a.Content))), nil
	case toolEditFile:
		var a editFileArgs
		if err := parse(&a); err != nil {
			return toolRecord{}, err
		}
		if err := r.checkWrite(rule, a.Path); err != nil {
			return toolRecord{Output: err.Error() + ": change only the files you may", IsErr: true}, nil
		}
		n, err := ov.Edit(a.Path, a.OldString, a.NewString, a.ReplaceAll)
		if err != nil {
			return toolRecord{}, err
		}
		return changed(ov, a.Path, fmt.Sprintf("replaced %s in %s (your copy of the workspace)", plural(n, "occurrence"), a.Path)), nil
	}
	return toolRecord{}, badArgsError{fmt.Errorf("no tool %s", c.Name)}
}

// changed is the record of a write to path that said out.
func changed(ov *workspace.Overlay, path, out string) toolRecord {
	rec := toolRecord{Output: out}
	if ch, ok := ov.Changed(path); ok {
		rec.Change = &ch
	}
	return rec
}

// toolDone counts a tool call (run_code, a workspace or an MCP tool) on
// its node: how many, how many failed, and the time they took.
func (r *run) toolDone(ns *nodeState, d time.Duration, failed bool) {
	r.mu.Lock()
	ns.ToolCalls++
	if failed {
		ns.ToolErrors++
	}
	ns.ToolMillis += d.Milliseconds()
	r.mu.Unlock()
}

// capText cuts s to at most n bytes (at a UTF-8 boundary), saying so.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return cutUTF8(s, n) + fmt.Sprintf("\n[cut at %d of %d bytes]", n, len(s))
}
