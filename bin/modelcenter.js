#!/usr/bin/env node
// The `modelcenter` command on a fresh clone: runs the TypeScript source in this process through
// tsx's loader, so no build or link step is needed and signals reach the controller directly
// (no tsx or shell child in between: SIGTERM/SIGINT to this pid stop everything it started).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/index.ts');
