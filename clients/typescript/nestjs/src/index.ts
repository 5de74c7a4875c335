export { QueueappModule, QueueappQueuesModule } from "./queueapp.module";
export { QueueService, QueueMonitoringService, JobSchedulerService } from "./services";
export { PrioritizationService } from "./prioritization.service";
export { RetryLogicService } from "./retry-logic.service";
export { Queue, toOptions } from "./queue";
export type { BullJobOptions } from "./queue";
export { Processor, Process, OnQueueActive, OnQueueProgress, OnQueueCompleted, OnQueueFailed, OnQueueError, InjectQueue } from "./decorators";
export { QueueappExplorer } from "./explorer";
export { JobPriority, JobStatus } from "./enums";
export { QUEUEAPP_OPTIONS, getQueueToken } from "./constants";
export type { QueueappModuleOptions, QueueappModuleAsyncOptions, QueueRegistration, PriorityFactors, JobOptions, RetryStrategy, QueueMetrics, QueueHealthStatus } from "./interfaces";
// What a processor is given, and what it may throw, under the names Bull users know.
export { WorkerJob as Job, QueueClient, UnrecoverableError, RetryLater, QueueApiError, WorkerRefused } from "@queueapp/client";
