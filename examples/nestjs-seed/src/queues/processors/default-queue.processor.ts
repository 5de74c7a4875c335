import { Logger } from "@nestjs/common";
// Changed from the seed: the decorators and Job come from @queueapp/nestjs, not @nestjs/bull and bull.
import { Job, OnQueueCompleted, OnQueueFailed, Process, Processor } from "@queueapp/nestjs";

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Processor("default")
export class DefaultQueueProcessor {
  private readonly logger = new Logger(DefaultQueueProcessor.name);

  @Process("*")
  async handleJob(job: Job): Promise<any> {
    this.logger.log(`Processing job ${job.id} of type ${job.name}`);
    return this.processJobByType(job);
  }

  @OnQueueCompleted()
  onCompleted(job: Job, result: any) {
    this.logger.log(`Job ${job.id} completed: ${JSON.stringify(result)}`);
  }

  @OnQueueFailed()
  onFailed(job: Job, error: Error) {
    this.logger.warn(`Job ${job.id} failed: ${error.message}`);
  }

  private async processJobByType(job: Job): Promise<any> {
    switch (job.name) {
      case "send-email":
        return this.processEmail(job);
      case "generate-report":
        return this.processReport(job);
      case "process-payment":
        return this.processPayment(job);
      case "backup-data":
        return this.processBackup(job);
      // the usage examples' own job types ("Adding Custom Job Types")
      case "important-task":
      case "send-reminder":
      case "cleanup-temp-files":
        return this.processMyCustomJob(job);
      default:
        throw new Error(`Unknown job type: ${job.name}`);
    }
  }

  private async processEmail(job: Job): Promise<any> {
    const { to, subject } = job.data;
    if (!to) throw new Error("Email recipient is required");
    await job.progress(50);
    await pause(job.data.workMs ?? 10);
    await job.progress(100);
    return { sent: true, to, subject, sentAt: new Date().toISOString() };
  }

  private async processReport(job: Job): Promise<any> {
    await job.progress(50);
    await pause(job.data.workMs ?? 10);
    await job.progress(100);
    return { reportId: `report-${job.id}`, type: job.data.type ?? "daily" };
  }

  private async processPayment(job: Job): Promise<any> {
    const { amount, userId } = job.data;
    if (typeof amount !== "number" || amount <= 0) throw new Error("Invalid payment amount");
    await job.progress(50);
    return { transactionId: `txn-${job.id}`, amount, userId, status: "completed" };
  }

  private async processBackup(job: Job): Promise<any> {
    await job.progress(50);
    await pause(job.data.workMs ?? 10);
    return { backupId: `backup-${job.id}`, completedAt: new Date().toISOString() };
  }

  private async processMyCustomJob(job: Job): Promise<any> {
    // Your processing logic
    await job.progress(50);
    // More logic
    await job.progress(100);
    return { status: "completed" };
  }
}
