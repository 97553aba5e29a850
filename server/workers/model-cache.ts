import type { ModelGraph } from '../../shared/model-graph';
import { decodeModelPackage } from '../../shared/model-package';

/** Decoded models kept per thread: a job's shards all use one, and a few jobs run at once. */
const MODELS_KEPT = 4;

const models = new Map<string, ModelGraph>();

/**
 * The decoded graph of a model package, decoded once per thread and content
 * hash: each worker thread (and the main thread, for small models) has its own.
 */
export function decodedModel(sha256: string, bytes: Uint8Array): ModelGraph {
  let graph = models.get(sha256);
  if (graph) {
    models.delete(sha256); // re-insert: Map order is our LRU order
  } else {
    graph = decodeModelPackage(bytes);
  }
  models.set(sha256, graph);
  if (models.size > MODELS_KEPT) models.delete(models.keys().next().value!);
  return graph;
}
