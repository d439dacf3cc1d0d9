import type { Rule } from './rules.js';
import type { Problem } from './problems.js';
import { problemAt } from './source.js';

/**
 * The `health` section and the controller's `health_overlay`: thresholds that contradict each
 * other are errors; an overlay naming a provider or model that is gone is only a warning (the
 * policies changed after the controller wrote it, and the next evaluation rewrites it).
 */
export const healthRules: Rule = (set) => {
  const problems: Problem[] = [];
  const health = set.health;
  const demotion = health?.value.demotion;
  if (health && demotion) {
    const failing = demotion.error_rate ?? 0.5;
    const recovered = demotion.recover_below ?? 0.1;
    if (recovered > failing) {
      problems.push(
        problemAt(
          health.source,
          [...health.path, 'demotion', 'recover_below'],
          `recover_below (${recovered}) is above error_rate (${failing}): a provider could be failing and recovered at once`,
          'set recover_below at or below error_rate',
        ),
      );
    }
  }
  const passthrough = set.litellm?.value.general_settings ?? {};
  if (health?.value.probe_interval) {
    for (const key of ['background_health_checks', 'health_check_interval']) {
      if (key in passthrough && set.litellm) {
        problems.push(
          problemAt(
            set.litellm.source,
            [...set.litellm.path, 'general_settings', key],
            `"${key}" is set by Model Center from health.probe_interval`,
            'remove it here and use health.probe_interval',
          ),
        );
      }
    }
  }
  const overlay = set.healthOverlay;
  if (overlay) {
    for (const provider of Object.keys(overlay.value.demoted)) {
      if (set.providers.has(provider)) continue;
      problems.push(
        problemAt(
          overlay.source,
          [...overlay.path, 'demoted', provider],
          `demoted provider "${provider}" is not defined`,
          'the health controller rewrites this file at its next evaluation; no action needed',
          'warning',
        ),
      );
    }
  }
  return problems;
};
