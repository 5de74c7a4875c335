import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from "@nestjs/common";
import { DiscoveryService, MetadataScanner } from "@nestjs/core";
import { QueueClient, Worker, WorkerJob } from "@queueapp/client";
import { LISTENER, PROCESS, PROCESSOR, QUEUEAPP_OPTIONS } from "./constants";
import type { ProcessMeta, ProcessorMeta, QueueEvent } from "./decorators";
import type { QueueappModuleOptions, QueueRegistration } from "./interfaces";

/** A queue's registration, as registerQueue provides it (found by its class). */
export class RegisteredQueue {
  constructor(readonly registration: QueueRegistration) {}
}

/**
 * Finds the @Processor() classes of the application when it has started, and runs
 * a Worker for each: its @Process() methods by job name (or "*" for the rest), its
 * @OnQueue...() methods told of what happens. The workers stop, letting running jobs
 * finish, when the application closes (app.close(), or SIGTERM with shutdown hooks).
 */
@Injectable()
export class QueueappExplorer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger("Queueapp");
  readonly workers: Worker[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly client: QueueClient,
    @Inject(QUEUEAPP_OPTIONS) private readonly options: QueueappModuleOptions,
  ) {}

  onApplicationBootstrap(): void {
    if (this.options.workers === false) return;
    const providers = this.discovery.getProviders();
    const concurrencyOf = new Map<string, number>();
    for (const wrapper of providers) {
      if (wrapper.instance instanceof RegisteredQueue && wrapper.instance.registration.concurrency) {
        concurrencyOf.set(wrapper.instance.registration.name, wrapper.instance.registration.concurrency);
      }
    }
    for (const wrapper of providers) {
      const { instance, metatype } = wrapper;
      if (!instance || !metatype || typeof metatype !== "function") continue;
      const meta: ProcessorMeta | undefined = Reflect.getMetadata(PROCESSOR, metatype);
      if (meta) this.start(instance, meta.queue ?? this.client.queue, concurrencyOf);
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.close(this.options.closeTimeoutMs)));
  }

  private start(instance: Record<string, any>, queue: string, concurrencyOf: Map<string, number>): void {
    const handlers = new Map<string, (job: WorkerJob) => unknown>();
    const listeners: Array<[QueueEvent, string]> = [];
    let concurrency = 0;
    const prototype = Object.getPrototypeOf(instance);
    for (const method of this.scanner.getAllMethodNames(prototype)) {
      const process: ProcessMeta | undefined = Reflect.getMetadata(PROCESS, prototype[method]);
      if (process) {
        if (handlers.has(process.name)) throw new Error(`two @Process('${process.name}') methods on ${instance.constructor.name}`);
        handlers.set(process.name, (job) => instance[method](job));
        concurrency += process.concurrency ?? 0;
      }
      const event: QueueEvent | undefined = Reflect.getMetadata(LISTENER, prototype[method]);
      if (event) listeners.push([event, method]);
    }
    if (!handlers.size) return;
    const every = handlers.get("*");
    const worker = new Worker(this.client.forQueue(queue, { coalesce: false }), {
      names: every ? undefined : [...handlers.keys()],
      concurrency: concurrency || concurrencyOf.get(queue) || this.options.concurrency || 1,
      leaseMs: this.options.leaseMs,
      closeTimeoutMs: this.options.closeTimeoutMs,
    }, (job) => {
      const handler = handlers.get(job.name) ?? every;
      if (!handler) throw new Error(`no @Process('${job.name}') on ${instance.constructor.name}`);
      return handler(job);
    });
    for (const [event, method] of listeners) worker.on(event as "completed", (...args: unknown[]) => instance[method](...args));
    if (!listeners.some(([event]) => event === "error")) worker.on("error", (error) => this.logger.error(error.message));
    this.workers.push(worker);
    this.logger.log(`${instance.constructor.name} processes ${every ? "every job" : [...handlers.keys()].join(", ")} of queue ${queue}`);
  }
}
