import "reflect-metadata";
import { NestFactory } from "@nestjs/core";
import { AppModule } from "./app.module";

async function bootstrap() {
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks();  // SIGTERM: processors finish their jobs, then the app stops
  await app.listen(Number(process.env.PORT ?? 3001), "127.0.0.1");
}
bootstrap();
