import { Module } from "@nestjs/common";
// Changed from the seed: QueueappModule instead of BullModule, and no Redis.
import { QueueappModule } from "@queueapp/nestjs";
import { QueueController } from "./queue.controller";
import { DefaultQueueProcessor } from "./processors/default-queue.processor";

@Module({
  imports: [
    QueueappModule.forRoot({
      url: process.env.QUEUEAPP_URL ?? "http://127.0.0.1:3000",
      token: process.env.QUEUEAPP_TOKEN,
      queue: "default",
      concurrency: 5, // Process 5 jobs simultaneously
    }),
  ],
  controllers: [QueueController],
  providers: [DefaultQueueProcessor],
})
export class QueueModule {}
