// Package swarm runs swarms: a lead model that splits a job and a tree of
// worker models that do its parts, each a model in a tool loop.
//
// A run ([Engine.Start]) is a DBOS workflow. The lead's model calls are
// DBOS steps; everything else a run does that costs money or touches the
// world (a worker's call, a code run, a verdict, a tool call, a task's
// result) is journaled in Hive's steps table under a deterministic key
// (NODE/call-N, NODE/code-A-N, NODE/tool-A-N, NODE/verify-N, task/NODE),
// so that a resumed run reads back what finished instead of doing it
// again, and replays the conversations that lead to the rest.
//
// Workers have run_code, submit, delegate (while depth allows), and the
// tools the run grants:
//
//   - with a workspace ([Spec.Workspace]), list_files, read_file, grep,
//     write_file and edit_file over package workspace: reads are confined
//     to the tree, writes go to the worker's own overlay, and what a
//     worker changed goes with its report as a patch, checked by a
//     configured command against the workspace with those changes
//     ([SandboxRunner.CheckTree]) and merged by the lead's finish into the
//     run's patch ([RunPatch]), which the user applies (files.go,
//     patch.go);
//   - the allowed tools of the run's MCP servers ([Spec.MCP]), by their
//     names SERVER__tool, to the roles and tiers their tables name
//     (mcptools.go).
//
// Each task is verified when it says how, repaired with the verifier's
// evidence, and moved up the tiers while it fails (task.go). Every call
// reserves its worst case from the run's budget before it is sent.
//
// What a model writes is untrusted: it may choose data, never an action on
// the host (trust.go, and SECURITY.md).
package swarm
