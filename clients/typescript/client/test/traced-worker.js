#!/usr/bin/env node
// The TypeScript Worker with OpenTelemetry set up as a program would: a tracer
// provider sending over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, registered as the
// global one with the W3C propagator. Runs "traced-charge" jobs of QUEUEAPP_QUEUE
// until SIGTERM, then flushes its spans and exits 0.
"use strict";
const otel = require("@opentelemetry/api");
const { W3CTraceContextPropagator } = require("@opentelemetry/core");
const { BasicTracerProvider, BatchSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-http");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { Worker } = require("../dist");

const env = process.env;
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "queueapp-ts-worker" }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${env.OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces` }),
    { scheduledDelayMillis: 50 })],
});
otel.trace.setGlobalTracerProvider(provider);
otel.propagation.setGlobalPropagator(new W3CTraceContextPropagator());

const worker = new Worker(env.QUEUEAPP_URL, {
  queue: env.QUEUEAPP_QUEUE || "default", names: ["traced-charge"], pollMs: 500, name: "ts-charger",
}, async (job) => ({ charged: true, traceparent: job.traceparent }));
worker.on("error", (error) => console.error(`worker: ${error.message}`));
process.on("SIGTERM", async () => {
  await worker.close();
  await provider.forceFlush();
  await provider.shutdown();
  process.exit(0);
});
