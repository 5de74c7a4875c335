/** The seed's priorities: a lower number starts first. */
export enum JobPriority {
  CRITICAL = 1,
  HIGH = 2,
  NORMAL = 3,
  LOW = 4,
  BACKGROUND = 5,
}

/** A job's states, as the appliance names them. */
export enum JobStatus {
  WAITING = "waiting",
  DELAYED = "delayed",
  BLOCKED = "blocked",
  ACTIVE = "active",
  COMPLETED = "completed",
  FAILED = "failed",
  CANCELLED = "cancelled",
  EXPIRED = "expired",
}
