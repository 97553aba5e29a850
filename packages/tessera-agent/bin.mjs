#!/usr/bin/env node
// `npx tessera-agent` inside the repository: a local package whose only job is to expose the bin.
import { register } from 'tsx/esm/api';

register();
await import('../../agent/main.ts');
