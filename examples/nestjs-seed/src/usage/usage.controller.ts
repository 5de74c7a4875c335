import { Body, Controller, Get, Post } from "@nestjs/common";
import { UsageService } from "./usage.service";

/** Runs each usage example on request, answering what it gave (for a demo, and the tests). */
@Controller("usage")
export class UsageController {
  constructor(private readonly usage: UsageService) {}

  @Post("basic")
  basic() {
    return this.usage.basicJobAddition();
  }

  @Post("priority")
  priority(@Body() body: { data?: Record<string, unknown>; deadline?: string }) {
    return this.usage.priorityCalculation(body.data ?? {}, body.deadline ?? "2024-12-31");
  }

  @Post("scheduling")
  scheduling(@Body() body: { at: string; delayMs?: number }) {
    return this.usage.jobScheduling(body.at, body.delayMs ?? 60000);
  }

  @Get("monitoring")
  monitoring() {
    return this.usage.monitoring();
  }

  @Get("retry-strategy")
  retryStrategy() {
    return this.usage.customStrategy();
  }

  @Get("report-runs")
  reportRuns() {
    return { runs: this.usage.reportRuns.length };
  }

}
