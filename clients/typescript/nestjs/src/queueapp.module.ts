import { DynamicModule, Global, Module, Provider } from "@nestjs/common";
import { DiscoveryModule } from "@nestjs/core";
import { QueueClient } from "@queueapp/client";
import { QUEUEAPP_OPTIONS, getQueueToken } from "./constants";
import { QueueappExplorer, RegisteredQueue } from "./explorer";
import type { QueueappModuleAsyncOptions, QueueappModuleOptions, QueueRegistration } from "./interfaces";
import { PrioritizationService } from "./prioritization.service";
import { Queue } from "./queue";
import { RetryLogicService } from "./retry-logic.service";
import { JobSchedulerService, QueueMonitoringService, QueueService } from "./services";

const SERVICES = [QueueService, PrioritizationService, RetryLogicService, JobSchedulerService, QueueMonitoringService];

function queueProvider(name: string): Provider {
  return { provide: getQueueToken(name), useFactory: (client: QueueClient) => new Queue(name, client.forQueue(name)), inject: [QueueClient] };
}

/** The seed's queue module, backed by a queueapp appliance instead of Bull and Redis.
 *
 *     @Module({ imports: [QueueappModule.forRoot({ url: "http://127.0.0.1:3000", queue: "default", concurrency: 5 })],
 *               providers: [DefaultQueueProcessor] })
 */
@Global()
@Module({})
export class QueueappModule {
  static forRoot(options: QueueappModuleOptions): DynamicModule {
    const queue = options.queue ?? "default";
    return QueueappModule.build({ provide: QUEUEAPP_OPTIONS, useValue: options }, [], [queueProvider(queue)]);
  }

  /** Options from a factory (ConfigService, say): `inject` its dependencies, `imports` their modules. */
  static forRootAsync(options: QueueappModuleAsyncOptions): DynamicModule {
    return QueueappModule.build(
      { provide: QUEUEAPP_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] }, options.imports ?? [], []);
  }

  /** Queues for @InjectQueue(name), each with the concurrency of its processors. */
  static registerQueue(...queues: QueueRegistration[]): DynamicModule {
    const providers: Provider[] = queues.flatMap((queue) => [
      queueProvider(queue.name),
      { provide: `QueueappRegistration:${queue.name}`, useValue: new RegisteredQueue(queue) },
    ]);
    return { module: QueueappQueuesModule, providers, exports: providers };
  }

  private static build(options: Provider, imports: DynamicModule["imports"], extra: Provider[]): DynamicModule {
    const providers: Provider[] = [
      options,
      {
        provide: QueueClient, inject: [QUEUEAPP_OPTIONS],
        useFactory: (o: QueueappModuleOptions) => new QueueClient(o.url, { token: o.token, queue: o.queue ?? "default" }),
      },
      { provide: getQueueToken(), useFactory: (client: QueueClient) => new Queue(client.queue, client), inject: [QueueClient] },
      ...extra,
      ...SERVICES,
      QueueappExplorer,
    ];
    const exported = providers.filter((p) => p !== QueueappExplorer && p !== options);
    return { module: QueueappModule, global: true, imports: [DiscoveryModule, ...(imports ?? [])], providers, exports: [...exported, QUEUEAPP_OPTIONS] };
  }
}

@Module({})
export class QueueappQueuesModule {}
