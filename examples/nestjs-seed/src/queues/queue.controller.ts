import { Body, Controller, Get, HttpCode, Param, Post, Query } from "@nestjs/common";
import {
  JobOptions, JobSchedulerService, PriorityFactors, QueueMonitoringService, QueueService,
} from "@queueapp/nestjs";

// The seed's REST endpoints, through the seed's services.
@Controller("queues")
export class QueueController {
  constructor(
    private readonly queueService: QueueService,
    private readonly schedulerService: JobSchedulerService,
    private readonly monitoringService: QueueMonitoringService,
  ) {}

  @Post("jobs")
  async addJob(@Body() body: { name: string; data?: Record<string, unknown>; options?: JobOptions; priorityFactors?: PriorityFactors }) {
    return this.queueService.addJob(body.name, body.data ?? {}, body.options ?? {}, body.priorityFactors);
  }

  @Post("jobs/schedule")
  async scheduleJob(@Body() body: { name: string; data?: Record<string, unknown>; scheduledTime: string }) {
    return this.schedulerService.scheduleJob(body.name, body.data ?? {}, new Date(body.scheduledTime));
  }

  @Get("metrics")
  async getMetrics() {
    return this.monitoringService.getQueueMetrics();
  }

  @Get("health")
  async getHealth() {
    return this.monitoringService.checkQueueHealth();
  }

  @Get("jobs/failed")
  async getFailedJobs(@Query("limit") limit?: string) {
    return this.monitoringService.getFailedJobs(limit ? Number(limit) : 10);
  }

  @Post("jobs/:id/retry")
  @HttpCode(200)
  async retryJob(@Param("id") id: string) {
    return this.queueService.retryJob(id);
  }

  @Post("pause")
  @HttpCode(200)
  async pause() {
    return this.queueService.pauseQueue();
  }

  @Post("resume")
  @HttpCode(200)
  async resume() {
    return this.queueService.resumeQueue();
  }

  @Post("clean")
  @HttpCode(200)
  async clean(@Body() body: { grace?: number; status?: "completed" | "failed" }) {
    return { removed: await this.queueService.cleanQueue(body.grace ?? 0, body.status ?? "completed") };
  }
}
