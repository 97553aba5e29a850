/**
 * Every task the worker pool runs, by name. The worker entry (worker-entry.mjs)
 * loads this module in each thread and hands its default export to piscina;
 * the pool calls runTask directly for tasks too small to be worth a thread.
 */
import type { MessagePort } from 'node:worker_threads';
import { analyzeModel } from '../jobs/model-analysis';
import { computeCanaryTile } from '../trust/canary-factory';
import { canaryMismatch, checkInferenceShard, checkMatmulTile, inferenceReplicasAgree, matmulReplicasAgree } from './verify-tasks';

export const TASKS = {
  matmulTile: checkMatmulTile,
  // Random draws come from the thread's own crypto source: only the input crosses to the thread.
  inferenceShard: (input: Parameters<typeof checkInferenceShard>[0]) => checkInferenceShard(input),
  inferenceReplicas: inferenceReplicasAgree,
  matmulReplicas: matmulReplicasAgree,
  canary: canaryMismatch,
  // A canary's inputs and known answer: rows·cols·k multiply-adds, kept off the event loop.
  canaryTile: computeCanaryTile,
  // An uploaded model's parse, checks and plan: linear in its size, but a 10,000-node graph is still 100 ms of CPU.
  analyzeModel,
};

export type TaskKind = keyof typeof TASKS;
export type TaskInput<K extends TaskKind> = Parameters<(typeof TASKS)[K]>[0];
export type TaskOutput<K extends TaskKind> = ReturnType<(typeof TASKS)[K]>;

export function runTask<K extends TaskKind>(kind: K, input: TaskInput<K>): TaskOutput<K> {
  const task = TASKS[kind] as (input: TaskInput<K>) => TaskOutput<K>;
  return task(input);
}

/** What the pool posts to a worker: the task, and a port on which the worker says it has started it (its time limit runs from then). */
export interface TaskMessage<K extends TaskKind = TaskKind> {
  kind: K;
  input: TaskInput<K>;
  started: MessagePort;
}

export default function runTaskMessage(msg: TaskMessage): unknown {
  msg.started.postMessage('started');
  msg.started.close();
  return runTask(msg.kind, msg.input);
}
