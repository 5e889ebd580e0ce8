import type { TensorSpec } from '@inferrer/core';

export function specs(metadata: readonly unknown[]): TensorSpec[];
