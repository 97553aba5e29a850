#!/usr/bin/env node
// Entry point of `npx tessera`: runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../cli/tessera.ts');
