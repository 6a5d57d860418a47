// The official OpenAI Node SDK against hive serve: run by TestOpenAINodeSDK
// with HIVE_URL (the API's base, ending in /v1), HIVE_TOKEN and one mode
// as argument. It prints one JSON line of what it saw; the Go test judges.
import OpenAI from 'openai';

const mode = process.argv[2];
const out = { tries: 0 };
// Counts the HTTP requests the SDK sends, retries included.
const counted = (url, init) => {
  out.tries++;
  return fetch(url, init);
};
const client = new OpenAI({ baseURL: process.env.HIVE_URL, apiKey: process.env.HIVE_TOKEN, fetch: counted });
const messages = [{ role: 'user', content: 'Count the reports.' }];

function failure(err) {
  return { status: err.status ?? null, code: err.code ?? null, type: err.type ?? null, name: err.constructor.name };
}

try {
  switch (mode) {
    case 'models': {
      out.ids = [];
      for await (const m of client.models.list()) out.ids.push(m.id);
      out.one = await client.models.retrieve('fast');
      try {
        await client.models.retrieve('gpt-nope');
      } catch (err) {
        out.unknown = failure(err);
      }
      break;
    }
    case 'chat': {
      // The SDK's defaults: two retries of a 500.
      const { data, response } = await client.chat.completions.create({ model: 'hive', messages }).withResponse();
      out.answer = data.choices[0].message.content;
      out.run = response.headers.get('x-hive-run');
      const stream = await client.chat.completions.create({ model: 'hive', messages, stream: true });
      out.streamed = '';
      for await (const chunk of stream) out.streamed += chunk.choices[0]?.delta?.content ?? '';
      break;
    }
    case 'fail': {
      try {
        await client.chat.completions.create({ model: 'hive', messages });
      } catch (err) {
        out.error = failure(err);
      }
      break;
    }
    case 'timeout': {
      // Each try times out before the swarm answers: the SDK retries, and
      // the retries wait for the first try's run instead of starting more.
      const slow = new OpenAI({ baseURL: process.env.HIVE_URL, apiKey: process.env.HIVE_TOKEN, timeout: 400, maxRetries: 5, fetch: counted });
      const { data, response } = await slow.chat.completions.create({ model: 'hive', messages }).withResponse();
      out.answer = data.choices[0].message.content;
      out.run = response.headers.get('x-hive-run');
      break;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
} catch (err) {
  out.thrown = { ...failure(err), message: String(err.message) };
}
console.log(JSON.stringify(out));
