// Package telemetry reports what Hive's runs do to the tools operators
// already run: OpenTelemetry traces over OTLP, and Prometheus metrics.
//
// A trace is one execution of a run. Its root span is the run
// (invoke_workflow hive); under it, a span for each node of the tree
// (invoke_agent lead, invoke_agent worker, invoke_agent verifier), each
// under the node that delegated it; under a node, its model calls (chat
// MODEL), its tool calls (execute_tool TOOL), its verifications (verify
// KIND) and its code runs (run_code LANG). Spans follow the OpenTelemetry
// GenAI semantic conventions (gen_ai.operation.name, gen_ai.provider.name,
// gen_ai.request.model, gen_ai.response.model, gen_ai.usage.*,
// gen_ai.tool.name) and add Hive's own: hive.run.id, hive.node.id,
// hive.tier, hive.cost.usd.
//
// Message content (prompts, answers, tool arguments and results) goes on
// spans only when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true,
// and then through the process's [secret.Redactor], as everything else
// Hive writes down; every attribute a model can choose (a tool's name, its
// arguments) is cut to a bounded size ([MaxName], [MaxContent]).
//
// [Open] reads the standard variables: tracing is on when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// (or OTEL_TRACES_EXPORTER=otlp), and the official exporter then reads the
// rest (protocol, headers, TLS, timeouts, sampler, resource) as every
// OpenTelemetry SDK does. Without them a [Telemetry] traces nothing and
// costs a nil check per operation.
//
// [Metrics] are counters and histograms of model calls, tokens, dollars,
// 429s and workers in flight, which hive serve exposes at /metrics.
//
// A nil *Telemetry and a nil *[Span] do nothing, so callers need no
// checks of their own.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/hive-swarm/hive/internal/secret"
)

// CaptureEnv is the variable that turns on message content in spans, as
// the GenAI instrumentations of OpenTelemetry name it.
const CaptureEnv = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

// Options are a [Telemetry]'s optional parts.
type Options struct {
	// Redact replaces known secrets in captured content and in error
	// texts put on spans.
	Redact *secret.Redactor
	// Metrics, when set, count model calls and workers.
	Metrics *Metrics
	// CaptureContent puts message content on spans (redacted and cut).
	// [Open] sets it from [CaptureEnv].
	CaptureContent bool
}

// Telemetry reports a process's runs: spans to a tracer, counts to
// metrics. A nil *Telemetry reports nothing. It is safe for concurrent
// use.
type Telemetry struct {
	tracer  trace.Tracer // nil: no traces
	opts    Options
	metrics *Metrics
	// shutdown flushes and stops the tracer provider Open made; nil when
	// the provider is the caller's.
	shutdown func(context.Context) error
}

// New returns a Telemetry that traces to tp (nil: no traces).
func New(tp trace.TracerProvider, opts Options) *Telemetry {
	t := &Telemetry{opts: opts, metrics: opts.Metrics}
	if tp != nil {
		t.tracer = tp.Tracer("github.com/hive-swarm/hive")
	}
	return t
}

// Open returns a Telemetry that exports traces over OTLP when the
// environment (read with getenv) asks for them, and traces nothing
// otherwise. The exporter reads the standard OTEL_EXPORTER_OTLP_*
// variables itself, from the process's environment; OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES name the service (default "hive"). Nothing is
// sent before the first span ends. Close flushes what is left.
func Open(ctx context.Context, getenv func(string) string, log *slog.Logger, opts Options) (*Telemetry, error) {
	opts.CaptureContent = strings.EqualFold(strings.TrimSpace(getenv(CaptureEnv)), "true")
	exp, err := exporter(ctx, getenv)
	if err != nil || exp == nil {
		return New(nil, opts), err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "hive")),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
	)
	if err != nil && res == nil {
		return New(nil, opts), fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	limits := sdktrace.NewSpanLimits() // OTEL_SPAN_* and OTEL_ATTRIBUTE_* when set
	if limits.AttributeValueLengthLimit < 0 || limits.AttributeValueLengthLimit > MaxContent {
		// A backstop: Hive cuts what it sets itself (see MaxContent).
		limits.AttributeValueLengthLimit = MaxContent
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&quietExporter{SpanExporter: exp, log: log}),
		sdktrace.WithResource(res),
		sdktrace.WithRawSpanLimits(limits),
	)
	t := New(tp, opts)
	t.shutdown = tp.Shutdown
	return t, nil
}

// Tracing reports whether t records spans.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracer != nil }

// Capturing reports whether t puts message content on spans.
func (t *Telemetry) Capturing() bool { return t.Tracing() && t.opts.CaptureContent }

// Close flushes the spans not yet exported and stops the exporter Open
// made, within ctx.
func (t *Telemetry) Close(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// exporter returns the span exporter the environment asks for, nil for
// none.
func exporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	switch kind := strings.ToLower(env("OTEL_TRACES_EXPORTER")); kind {
	case "none":
		return nil, nil
	case "otlp":
	case "":
		// The specification's default is otlp to localhost; Hive sends
		// nothing anywhere unless told where.
		if env("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, nil
		}
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: Hive exports traces over OTLP only (otlp, or none)", kind)
	}
	proto := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch proto {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: Hive exports over http/protobuf (the default, port 4318) or grpc (port 4317)", proto)
	}
	if err != nil {
		return nil, fmt.Errorf("start the OTLP exporter: %w", err)
	}
	return exp, nil
}

// quietExporter logs a failed export once, and once more when exports
// work again, instead of leaving each failure to OpenTelemetry's global
// error handler, which prints every one on stderr (over hive run's live
// tree). A trace lost to a collector that is down must not fail a run.
type quietExporter struct {
	sdktrace.SpanExporter
	log    *slog.Logger
	failed atomic.Bool
}

func (e *quietExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	switch {
	case err != nil && !e.failed.Swap(true):
		e.log.Warn("traces are not being exported", "spans_lost", len(spans), "err", err)
	case err == nil && e.failed.Swap(false):
		e.log.Info("traces are being exported again")
	}
	return nil
}
