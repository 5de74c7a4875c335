import { Inject, SetMetadata } from "@nestjs/common";
import { LISTENER, PROCESS, PROCESSOR, getQueueToken } from "./constants";

export interface ProcessorMeta {
  queue?: string;
}

export interface ProcessMeta {
  name: string;
  concurrency?: number;
}

export type QueueEvent = "active" | "progress" | "completed" | "failed" | "error";

/** A class whose @Process() methods run the jobs of `queue` (default: the module's queue). */
export function Processor(queue?: string | { name?: string }): ClassDecorator {
  const name = typeof queue === "string" ? queue : queue?.name;
  return SetMetadata<string, ProcessorMeta>(PROCESSOR, { queue: name });
}

/** The method that runs jobs named `name`; without a name (or "*"), every job the
 * class's other methods do not name. `concurrency`: jobs of it at once. */
export function Process(nameOrOptions?: string | { name?: string; concurrency?: number }): MethodDecorator {
  const meta: ProcessMeta = typeof nameOrOptions === "string"
    ? { name: nameOrOptions }
    : { name: nameOrOptions?.name ?? "*", concurrency: nameOrOptions?.concurrency };
  return SetMetadata<string, ProcessMeta>(PROCESS, meta);
}

const listener = (event: QueueEvent) => (): MethodDecorator => SetMetadata(LISTENER, event);

/** Called with (job) when a job of the processor's queue starts here. */
export const OnQueueActive = listener("active");
/** Called with (job, progress) when a running job reports progress. */
export const OnQueueProgress = listener("progress");
/** Called with (job, result) when a job completed here. */
export const OnQueueCompleted = listener("completed");
/** Called with (job, error) when a job's attempt failed here. */
export const OnQueueFailed = listener("failed");
/** Called with (error) when the worker could not reach the appliance or was refused. */
export const OnQueueError = listener("error");

/** Injects the Queue handle of `name` (default: the module's queue). */
export function InjectQueue(name?: string): ParameterDecorator & PropertyDecorator {
  return Inject(getQueueToken(name));
}
