import { Module } from "@nestjs/common";
import { QueueModule } from "./queues/queue.module";
import { UsageModule } from "./usage/usage.module";

@Module({ imports: [QueueModule, UsageModule] })
export class AppModule {}
