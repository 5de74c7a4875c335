import { Injectable, Logger, OnModuleInit } from "@nestjs/common";
// Changed from the seed: the services come from @queueapp/nestjs, not ./queues/...
import {
  JobPriority, JobSchedulerService, PrioritizationService, QueueMonitoringService, QueueService, RetryLogicService,
} from "@queueapp/nestjs";

/** The seed's "Usage Examples", each as the seed writes it. */
@Injectable()
export class UsageService implements OnModuleInit {
  private readonly logger = new Logger(UsageService.name);
  /** Runs of the recurring job's callback in this app instance. */
  readonly reportRuns: string[] = [];

  constructor(
    private queueService: QueueService,
    private prioritizationService: PrioritizationService,
    private schedulerService: JobSchedulerService,
    private monitoringService: QueueMonitoringService,
    private retryLogicService: RetryLogicService,
  ) {}

  onModuleInit() {
    // Schedule recurring job
    this.schedulerService.scheduleRecurringJob(
      'daily-report',
      '0 9 * * *', // Every day at 9 AM
      async () => {
        // Generate report logic
        this.reportRuns.push(new Date().toISOString());
        this.logger.log(`daily-report ran in instance ${process.env.INSTANCE ?? process.pid}`);
      }
    );
  }

  // Basic Job Addition
  async basicJobAddition() {
    // Add a job
    return await this.queueService.addJob('send-email', {
      to: 'user@example.com',
      subject: 'Welcome',
      body: 'Hello!'
    }, {
      priority: JobPriority.HIGH,
      attempts: 3
    });
  }

  // Priority Calculation
  async priorityCalculation(data: Record<string, unknown>, deadline: string) {
    // Calculate priority based on factors
    const priority = this.prioritizationService.calculatePriority({
      userTier: 'premium',
      urgency: 'high',
      businessImpact: 'revenue',
      deadline: new Date(deadline)
    });

    // Get recommended options for this priority
    const options = this.prioritizationService.getJobOptions(priority);

    // Add job with calculated priority
    const job = await this.queueService.addJob('important-task', data, options);
    return { priority, options, job };
  }

  // Job Scheduling
  async jobScheduling(at: string, delayMs: number) {
    // Schedule for specific time
    const reminder = await this.schedulerService.scheduleJob(
      'send-reminder',
      { userId: '123' },
      new Date(at)
    );

    // Schedule with delay
    const cleanup = await this.schedulerService.scheduleDelayedJob(
      'cleanup-temp-files',
      {},
      delayMs // 1 minute in the seed
    );
    return { reminder, cleanup };
  }

  // Monitoring
  async monitoring() {
    // Get current metrics
    const metrics = await this.monitoringService.getQueueMetrics();

    // Check health
    const health = await this.monitoringService.checkQueueHealth();

    if (health.status === 'critical') {
      // Send alert
      this.logger.error(`Queue health: ${health.status}: ${health.issues.join(', ')}`);
    }

    // Get failed jobs for analysis
    const failedJobs = await this.monitoringService.getFailedJobs(50);
    return { metrics, health, failedJobs };
  }

  // Custom Strategy
  customStrategy() {
    const strategy = this.retryLogicService.getDefaultStrategy('email');
    const delay = this.retryLogicService.calculateBackoffDelay(2, strategy);
    return { strategy, delay };
  }
}
