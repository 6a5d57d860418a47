package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
)

// The job every implementation runs: a lead call that fans out n tasks;
// for each task a worker of two model turns (the model calls read_file on
// the task's file, the worker reads it, the model answers with what it
// says); a last lead call that gets the n reports and answers. That is
// 2n+2 model calls. Every file holds a value only the file has, which the
// model server checks at each step and counts in the last lead call, so
// a run that skipped or broke anything answers with a smaller count.

// The peers' tool names. Hive's are its own: delegate and finish for the
// lead, read_file and submit for a worker.
const (
	toolFanOut = "fan_out"
	toolRead   = "read_file"
)

const (
	leadSystem   = "You are the lead of a fan-out. Split the job into tasks with fan_out; when the reports are in, answer with how many you got."
	workerSystem = "You are a worker. Read the file your task names with read_file, then answer with the line it holds, exactly."
)

// leadTask is the job as the lead is given it.
func leadTask(n int) string {
	return fmt.Sprintf("Fan out %d tasks: each reads one file under tasks/ and reports the value in it.", n)
}

func taskName(i int) string { return fmt.Sprintf("t-%d", i) }

// taskPath is the task's file, relative to the job's directory.
func taskPath(name string) string { return "tasks/" + name + ".txt" }

func taskInstructions(name string) string {
	return "Read " + taskPath(name) + " and report the value in it."
}

// taskValue is the value the task's file holds: a hash of its name.
func taskValue(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("%08x", h.Sum32())
}

// taskReport is a worker's right report: the line of its file.
func taskReport(name string) string { return name + "=" + taskValue(name) }

// wantAnswer is the lead's answer when all n reports came back right.
func wantAnswer(n int) string { return fmt.Sprintf("%d reports", n) }

// The tools' JSON schemas, for the Go peers that take a schema as JSON.
const (
	fanOutDesc   = "Fan the job out: one worker per task, each given its instructions. Returns the workers' reports."
	fanOutSchema = `{"type":"object","properties":{"tasks":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"instructions":{"type":"string"}},"required":["name","instructions"]}}},"required":["tasks"]}`
	readDesc     = "Read a text file of the job's directory."
	readSchema   = `{"type":"object","properties":{"path":{"type":"string","description":"the file's path, relative to the job's directory"}},"required":["path"]}`
)

// A task as the lead's fan-out tool call gives it.
type task struct {
	Name         string `json:"name"`
	Instructions string `json:"instructions"`
}

// fanOutArgs are the arguments of the peers' fan_out call (and, with
// Hive's field names being the same, of Hive's delegate call).
type fanOutArgs struct {
	Tasks []task `json:"tasks"`
}

type readArgs struct {
	Path string `json:"path"`
}

// makeTaskDir writes the n task files under dir/tasks.
func makeTaskDir(dir string, n int) error {
	if err := os.MkdirAll(filepath.Join(dir, "tasks"), 0o755); err != nil {
		return err
	}
	for i := range n {
		name := taskName(i)
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(taskPath(name))), []byte(taskReport(name)+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readTask is the peers' read_file tool: it reads a file of dir named by
// the model's arguments, kept inside dir.
func readTask(dir, arguments string) (string, error) {
	var a readArgs
	if err := json.Unmarshal([]byte(arguments), &a); err != nil {
		return "", fmt.Errorf("read_file arguments: %w", err)
	}
	return readPath(dir, a.Path)
}

// readPath reads the file at path in dir, kept inside dir.
func readPath(dir, path string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, filepath.Clean("/"+path)))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// joinReports is what the peers' lead gets back from its fan-out: the
// workers' reports, one a line.
func joinReports(reports []string) string { return strings.Join(reports, "\n") }
