/** A policy set whose compiled config has exactly `deployments` deployments. */
export function syntheticPolicies(deployments: number): string {
  const profiles = 3; // every model is in its own group and in each of 3 profiles: 4 deployments per model
  const models = deployments / (profiles + 1);
  const lines = ['providers:'];
  for (let p = 0; p < 10; p++)
    lines.push(
      `  p${p}: { kind: openai_compatible, base_url: "http://10.0.0.${p}:8000/v1", credential: env:KEY_${p} }`,
    );
  lines.push('models:');
  for (let m = 0; m < models; m++) {
    lines.push(
      `  m${m}: { provider: p${m % 10}, upstream: "org/model-${m}", capabilities: [chat, streaming, tools], context_window: ${8192 * (1 + (m % 16))}, pricing: { input_per_mtok: ${(m % 50) / 10 + 0.1}, output_per_mtok: ${(m % 30) / 5 + 0.2} }, quality: ${m % 100} }`,
    );
  }
  lines.push('profiles:');
  lines.push('  fast: { requires: [chat, streaming], prefer: [cost], fallback: [deep] }');
  lines.push('  deep: { requires: [chat, tools], prefer: [quality], fallback: [wide] }');
  lines.push('  wide: { requires: [chat], prefer: [context], params: { temperature: 0.2 } }');
  return lines.join('\n');
}
