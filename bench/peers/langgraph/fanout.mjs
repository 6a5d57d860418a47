// The peer benchmark's LangGraph.js implementation (see ../main.go): a
// StateGraph whose lead node calls the model with fan_out bound, whose
// conditional edge sends one Send("worker") a task, whose worker node is
// a two-turn tool loop (ChatOpenAI with read_file bound, the tool made
// with LangChain's tool()), and whose final node gives the lead the
// reports. Invoked with maxConcurrency = cap and no checkpointer (the
// default: nothing is kept outside the process). ChatOpenAI is not
// streamed: streaming is off by default.
//
// The driver runs it with HIVE_PEERS_CHILD holding the job as JSON; it
// prints its result as one JSON line, as the Go children do.

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";

import { Annotation, END, START, Send, StateGraph } from "@langchain/langgraph";
import { ChatOpenAI } from "@langchain/openai";
import { tool } from "@langchain/core/tools";
import { HumanMessage, SystemMessage, ToolMessage } from "@langchain/core/messages";
import { z } from "zod";

// The prompts and the job, as in ../job.go.
const leadSystem = "You are the lead of a fan-out. Split the job into tasks with fan_out; when the reports are in, answer with how many you got.";
const workerSystem = "You are a worker. Read the file your task names with read_file, then answer with the line it holds, exactly.";
const leadTask = (n) => `Fan out ${n} tasks: each reads one file under tasks/ and reports the value in it.`;
const wantAnswer = (n) => `${n} reports`;

const job = JSON.parse(process.env.HIVE_PEERS_CHILD);

const fanOut = tool(async () => "", {
  name: "fan_out",
  description: "Fan the job out: one worker per task, each given its instructions. Returns the workers' reports.",
  schema: z.object({ tasks: z.array(z.object({ name: z.string(), instructions: z.string() })) }),
});

const readFileTool = tool(
  async ({ path: p }) => (await readFile(path.join(job.dir, path.normalize("/" + p)), "utf8")).trim(),
  {
    name: "read_file",
    description: "Read a text file of the job's directory.",
    schema: z.object({ path: z.string().describe("the file's path, relative to the job's directory") }),
  },
);

const model = (id) => new ChatOpenAI({ model: id, apiKey: "bench", configuration: { baseURL: job.url + "/v1" } });
const lead = model("langgraph-lead").bindTools([fanOut]);
const worker = model("langgraph-worker").bindTools([readFileTool]);

const State = Annotation.Root({
  messages: Annotation(), // the lead's conversation
  reports: Annotation({ reducer: (a, b) => a.concat(b), default: () => [] }),
  answer: Annotation(),
});

async function leadNode(state) {
  const ai = await lead.invoke(state.messages);
  return { messages: [...state.messages, ai] };
}

function fanOutEdge(state) {
  const ai = state.messages[state.messages.length - 1];
  const call = ai.tool_calls?.[0];
  if (ai.tool_calls?.length !== 1 || call.name !== "fan_out") {
    throw new Error("lead: no fan_out call");
  }
  return call.args.tasks.map((t) => new Send("worker", { task: t }));
}

async function workerNode({ task }) {
  const msgs = [new SystemMessage(workerSystem), new HumanMessage(task.instructions)];
  for (let turn = 0; turn < 4; turn++) {
    const ai = await worker.invoke(msgs);
    if (!ai.tool_calls?.length) {
      return { reports: [ai.content] };
    }
    msgs.push(ai);
    for (const tc of ai.tool_calls) {
      msgs.push(await readFileTool.invoke(tc)); // a ToolMessage
    }
  }
  throw new Error(`worker ${task.name}: no answer in 4 turns`);
}

async function finalNode(state) {
  const ai = state.messages[state.messages.length - 1];
  const msgs = [...state.messages, new ToolMessage({ content: state.reports.join("\n"), tool_call_id: ai.tool_calls[0].id })];
  const answer = await lead.invoke(msgs);
  return { messages: [...msgs, answer], answer: answer.content };
}

const graph = new StateGraph(State)
  .addNode("lead", leadNode)
  .addNode("worker", workerNode)
  .addNode("final", finalNode)
  .addEdge(START, "lead")
  .addConditionalEdges("lead", fanOutEdge, ["worker"])
  .addEdge("worker", "final")
  .addEdge("final", END)
  .compile();

const rssBefore = process.memoryUsage().rss;
const cpu0 = process.cpuUsage();
const start = Date.now();
const t0 = process.hrtime.bigint();
const out = await graph.invoke(
  { messages: [new SystemMessage(leadSystem), new HumanMessage(leadTask(job.n))] },
  { maxConcurrency: job.cap },
);
const wall = process.hrtime.bigint() - t0;
const end = Date.now();
const cpu = process.cpuUsage(cpu0);
if (out.answer !== wantAnswer(job.n)) {
  console.error(`langgraph: answered ${JSON.stringify(out.answer)}, want ${JSON.stringify(wantAnswer(job.n))}`);
  process.exit(1);
}
// The peak RSS of this process (VmHWM), as the Go children read theirs:
// rusage's maxrss carries the parent's over exec on Linux.
const hwm = /VmHWM:\s*(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
console.log(JSON.stringify({
  wall_ns: Number(wall),
  cpu_ns: (cpu.user + cpu.system) * 1000,
  rss_before_kb: Math.round(rssBefore / 1024),
  peak_rss_kb: Number(hwm[1]),
  answer: out.answer,
  start_unix_ns: start * 1e6,
  end_unix_ns: end * 1e6,
}));
