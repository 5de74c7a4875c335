export const QUEUEAPP_OPTIONS = Symbol("QUEUEAPP_OPTIONS");
export const PROCESSOR = "queueapp:processor";
export const PROCESS = "queueapp:process";
export const LISTENER = "queueapp:listener";

/** The injection token of the queue handle for `name` (what @InjectQueue(name) injects);
 * without a name, the module's own queue. */
export function getQueueToken(name?: string): string {
  return name === undefined ? "QueueappQueue" : `QueueappQueue:${name}`;
}
