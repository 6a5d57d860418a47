package llmtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hive-swarm/hive/internal/llm"
)

// NewLlamaCpp starts a server that speaks Chat Completions the way
// llama.cpp's llama-server does (ggml-org/llama.cpp, tools/server):
//
//   - tool_choice is read only as a string, "auto", "none" or "required";
//     an object is ignored with a warning and the default "auto" used
//     (utils.hpp json_value: "Wrong type supplied for parameter …, using
//     default value"); any other string is a 400 invalid_request_error
//     "Invalid tool_choice: …" (common/chat.cpp
//     common_chat_tool_choice_parse_oaicompat throws std::invalid_argument,
//     which server.cpp's ex_wrapper answers with 400; older builds threw
//     std::runtime_error, a 500).
//   - an assistant message in the history whose tool_calls[].function.arguments
//     is not JSON is a 500 server_error "Failed to parse tool call arguments
//     as JSON: [json.exception.parse_error.101] …" (common/chat.cpp, when it
//     hands the history to the chat template as objects; the body as
//     llama-server answered Hive).
//   - a request over [Server.ContextTokens] is a 400
//     exceed_context_size_error "the request exceeds the available context
//     size, try increasing it" with n_prompt_tokens and n_ctx
//     (utils.hpp format_error_response; server.cpp send_error with
//     ERROR_TYPE_EXCEED_CONTEXT_SIZE).
//   - errors are {"error":{"code":STATUS,"message","type"}}, the code the
//     HTTP status as a number, the type one of invalid_request_error,
//     authentication_error, not_found_error, permission_error,
//     unavailable_error, not_supported_error, server_error (utils.hpp
//     format_error_response).
//   - a stream ends with a usage chunk whose choices are empty when the
//     request asks for it with stream_options.include_usage (server.cpp,
//     to_json_oaicompat_chat_stream: "OpenAI API spec for
//     chat.completion.chunks specifies an empty choices array for the last
//     chunk when including usage"), as [NewOpenAI] does.
func NewLlamaCpp(h Handler) *Server {
	return newServer(&openAI{dialect: dialectLlamaCpp}, h)
}

// NewVLLM starts a server that speaks Chat Completions the way vLLM's
// OpenAI-compatible server does (vllm-project/vllm,
// vllm/entrypoints/openai):
//
//   - tool_choice takes "auto", "none", "required" and a named function
//     object (docs/features/tool_calling.md: named function calling,
//     "required" since v0.8.3, "auto" with --enable-auto-tool-choice).
//   - a request over [Server.ContextTokens] (max_model_len), counting its
//     max_tokens, is a 400 "This model's maximum context length is N
//     tokens. However, you requested M tokens (P in the messages, C in the
//     completion). Please reduce the length of the messages or
//     completion." (serving_engine.py _validate_input).
//   - errors are {"error":{"message","type","param":null,"code":STATUS}}
//     with types like BadRequestError and NotFoundError
//     (serving_engine.py create_error_response); a missing or wrong API
//     key is a 401 {"error":"Unauthorized"} (AuthenticationMiddleware, in
//     api_server.py, later server_utils.py).
//   - a history tool call whose arguments are not JSON is a 400 with
//     Python's json error (entrypoints/chat_utils.py _postprocess_messages
//     json.loads them for the chat template); empty arguments become {}.
//   - usage reaches a stream only with stream_options.include_usage, in a
//     last chunk with empty choices (serving_chat.py), as [NewOpenAI] does.
func NewVLLM(h Handler) *Server {
	return newServer(&openAI{dialect: dialectVLLM}, h)
}

// NewOllama starts a server that speaks Chat Completions the way Ollama's
// OpenAI-compatible endpoint does (ollama/ollama, docs/openai.md and
// openai/openai.go):
//
//   - tool_choice is not a field of its ChatCompletionRequest
//     (openai/openai.go) and is ignored: the model may always call a tool
//     or not.
//   - a history tool call whose arguments are not JSON is a 400
//     "invalid tool call arguments" (openai/openai.go
//     FromCompletionToolCall).
//   - a prompt over [Server.ContextTokens] (num_ctx) is cut, not refused:
//     Ollama answers anyway (docs/faq.md, "How can I specify the context
//     window size?").
//   - usage reaches a stream only with stream_options.include_usage
//     (docs/openai.md), as [NewOpenAI] does.
//   - errors are {"error":{"message","type","param":null,"code":null}},
//     the type invalid_request_error for 400, not_found_error for 404,
//     api_error otherwise (openai/openai.go NewError).
func NewOllama(h Handler) *Server {
	return newServer(&openAI{dialect: dialectOllama}, h)
}

// dialect is an OpenAI-compatible server's departures from OpenAI's API.
type dialect int

const (
	dialectOpenAI dialect = iota
	dialectLlamaCpp
	dialectVLLM
	dialectOllama
)

// llamaWrongType is what llama-server logs when tool_choice is not a
// string (tools/server/utils.hpp json_value: LOG_WRN("Wrong type supplied
// for parameter '%s'. Expected '%s', using default value: %s\n", …) with
// nlohmann's type_error).
const llamaWrongType = "Wrong type supplied for parameter 'tool_choice'. Expected 'string', using default value: [json.exception.type_error.302] type must be string, but is object"

// toolChoice reads a request's tool_choice into c.ToolChoice as d does.
func (d dialect) toolChoice(raw json.RawMessage, c *Call) error {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	absent := len(raw) == 0 || string(raw) == "null"
	if absent || d == dialectOllama {
		if len(c.Tools) > 0 || d == dialectLlamaCpp {
			c.ToolChoice = "auto"
		}
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		// llama.cpp answers an unknown string in refuse, with its own error.
		if d != dialectLlamaCpp && s != "auto" && s != "none" && s != "required" {
			return fmt.Errorf("Invalid value for 'tool_choice': %q", s)
		}
		c.ToolChoice = s
		return nil
	}
	if d == dialectLlamaCpp {
		c.Warnings = append(c.Warnings, llamaWrongType)
		c.ToolChoice = "auto"
		return nil
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return errors.New("Invalid value for 'tool_choice': give a string or {\"type\":\"function\",\"function\":{\"name\":…}}")
	}
	c.ToolChoice = "tool:" + obj.Function.Name
	return nil
}

func (p *openAI) refuse(w http.ResponseWriter, c *Call, contextTokens int) bool {
	n := promptTokens(c)
	over := contextTokens > 0 && n > contextTokens
	switch p.dialect {
	case dialectOllama:
		// openai/openai.go FromCompletionToolCall: json.Unmarshal of each
		// history tool call's arguments, its error a 400.
		if tc, _ := badToolArguments(c); tc != nil {
			p.writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid tool call arguments")
			return true
		}
	case dialectOpenAI:
		if over {
			p.writeError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf(
				"This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", contextTokens, n))
			return true
		}
	case dialectLlamaCpp:
		switch c.ToolChoice {
		case "auto", "none", "required":
		default:
			writeLlamaError(w, http.StatusBadRequest, "invalid_request_error", "Invalid tool_choice: "+c.ToolChoice, nil)
			return true
		}
		if tc, col := badToolArguments(c); tc != nil {
			writeLlamaError(w, http.StatusInternalServerError, "server_error", fmt.Sprintf(
				"Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] parse error at line 1, column %d: syntax error while parsing value", col), nil)
			return true
		}
		if over {
			writeLlamaError(w, http.StatusBadRequest, "exceed_context_size_error",
				"the request exceeds the available context size, try increasing it",
				map[string]any{"n_prompt_tokens": n, "n_ctx": contextTokens})
			return true
		}
	case dialectVLLM:
		// chat_utils.py _postprocess_messages json.loads each history tool
		// call's arguments (an empty one becomes {}); serving_chat.py
		// answers the ValueError with a 400 carrying Python's message.
		if tc, col := badToolArguments(c); tc != nil && len(tc.Input) > 0 {
			p.writeError(w, http.StatusBadRequest, "BadRequestError", fmt.Sprintf("Expecting value: line 1 column %d (char %d)", col, col-1))
			return true
		}
		if contextTokens <= 0 {
			return false
		}
		completion := c.MaxTokens
		if completion <= 0 {
			completion = max(contextTokens-n, 0)
		}
		if n+completion > contextTokens || n >= contextTokens {
			p.writeError(w, http.StatusBadRequest, "BadRequestError", fmt.Sprintf(
				"This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
				contextTokens, n+completion, n, completion))
			return true
		}
	}
	return false
}

// badToolArguments returns the first tool call in c's history whose
// arguments are not JSON, and the 1-based column where parsing failed; nil
// when there is none.
func badToolArguments(c *Call) (*llm.ToolCall, int) {
	for _, m := range c.Messages {
		for _, part := range m.Parts {
			tc, ok := part.(llm.ToolCall)
			if !ok {
				continue
			}
			var v any
			err := json.Unmarshal(tc.Input, &v)
			if err == nil {
				continue
			}
			col := len(tc.Input) + 1
			var se *json.SyntaxError
			if errors.As(err, &se) {
				col = int(se.Offset)
			}
			return &tc, col
		}
	}
	return nil, 0
}

// writeError writes an error body in d's shape (see the constructors).
func (d dialect) writeError(w http.ResponseWriter, status int, errType, message string) {
	switch d {
	case dialectLlamaCpp:
		typ := "server_error"
		switch {
		case llm.StatusKind(status, errType, message) == llm.KindContextTooLong:
			typ = "exceed_context_size_error"
		case status == http.StatusBadRequest:
			typ = "invalid_request_error"
		case status == http.StatusUnauthorized:
			typ = "authentication_error"
		case status == http.StatusForbidden:
			typ = "permission_error"
		case status == http.StatusNotFound:
			typ = "not_found_error"
		case status == http.StatusNotImplemented:
			typ = "not_supported_error"
		case status == http.StatusServiceUnavailable:
			typ = "unavailable_error"
		}
		writeLlamaError(w, status, typ, message, nil)
	case dialectVLLM:
		if status == http.StatusUnauthorized && message == wrongKey {
			writeJSON(w, status, map[string]any{"error": "Unauthorized"})
			return
		}
		typ := "InternalServerError"
		switch {
		case status == http.StatusBadRequest:
			typ = "BadRequestError"
		case status == http.StatusNotFound:
			typ = "NotFoundError"
		case status == http.StatusTooManyRequests:
			typ = "RateLimitError"
		case status == http.StatusServiceUnavailable || status == 529:
			typ = "ServiceUnavailableError"
		}
		writeJSON(w, status, map[string]any{"error": map[string]any{
			"message": message, "type": typ, "param": nil, "code": status}})
	case dialectOllama:
		typ := "api_error"
		switch status {
		case http.StatusBadRequest:
			typ = "invalid_request_error"
		case http.StatusNotFound:
			typ = "not_found_error"
		}
		writeJSON(w, status, map[string]any{"error": map[string]any{
			"message": message, "type": typ, "param": nil, "code": nil}})
	}
}

// writeLlamaError writes llama-server's error body, with extra fields
// (n_prompt_tokens, n_ctx) beside code, message and type.
func writeLlamaError(w http.ResponseWriter, status int, typ, message string, extra map[string]any) {
	e := map[string]any{"code": status, "message": message, "type": typ}
	for k, v := range extra {
		e[k] = v
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// models answers GET /v1/models with one model whose owned_by says which
// server it is, as each does: llama.cpp "llamacpp" (tools/server
// server.cpp, handle_models), vLLM "vllm" (entrypoints/openai/protocol.py,
// ModelCard.owned_by), Ollama "library" for a model of its library
// (openai/openai.go, ToModelList), OpenAI "openai" or "system".
func (o *openAI) models(w http.ResponseWriter) {
	owner := map[dialect]string{dialectOpenAI: "system", dialectLlamaCpp: "llamacpp", dialectVLLM: "vllm", dialectOllama: "library"}[o.dialect]
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"object":"list","data":[{"id":"test-model","object":"model","created":1700000000,"owned_by":%q}]}`, owner)
}
