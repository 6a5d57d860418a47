// The official MCP TypeScript SDK's client against Hive (TestMCPTypeScriptSDK):
// over stdio to `hive mcp` (HIVE_MCP_COMMAND, a JSON array, run with the
// environment HIVE_MCP_ENV, a JSON object), and over streamable HTTP to
// hive serve's /mcp (HIVE_MCP_URL, with HIVE_TOKEN and without). It lists
// the tools, calls run_swarm with progress, asks for a model hive.toml
// does not name, and prints what it saw as one JSON object.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

function text(result) {
  return (result.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("");
}

async function session(transport) {
  const client = new Client({ name: "hive-mcp-sdk-test", version: "1.0.0" });
  await client.connect(transport);
  try {
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const progress = [];
    const run = await client.callTool(
      { name: "run_swarm", arguments: { task: "Count to three." } },
      undefined,
      { onprogress: (p) => progress.push(p), resetTimeoutOnProgress: true },
    );
    const hostile = await client.callTool({
      name: "run_swarm",
      arguments: { task: "x", lead: "anthropic:claude-opus-4-1" },
    });
    const status = await client.callTool({ name: "run_status", arguments: { run_id: run.structuredContent?.run_id ?? "" } });
    return {
      server: client.getServerVersion()?.name,
      tools,
      run: { isError: run.isError ?? false, text: text(run), structured: run.structuredContent },
      progress,
      hostile: { isError: hostile.isError ?? false, text: text(hostile) },
      status: { isError: status.isError ?? false, text: text(status) },
    };
  } finally {
    await client.close();
  }
}

const out = {};
const env = JSON.parse(process.env.HIVE_MCP_ENV);
const [command, ...args] = JSON.parse(process.env.HIVE_MCP_COMMAND);
out.stdio = await session(new StdioClientTransport({ command, args, env, stderr: "inherit" }));

const url = new URL(process.env.HIVE_MCP_URL);
out.http = await session(
  new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { Authorization: `Bearer ${process.env.HIVE_TOKEN}` } },
  }),
);
try {
  const client = new Client({ name: "hive-mcp-sdk-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(url));
  out.noToken = { connected: true };
  await client.close();
} catch (e) {
  out.noToken = { name: e.name, code: e.code, message: e.message };
}
console.log(JSON.stringify(out));
