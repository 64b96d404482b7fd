/**
 * The model version written into every log header. Bump it whenever a change alters the messages or
 * states a scenario produces, so a replay of an older log can say why it diverges.
 */
export const MODEL_VERSION = 'tdxsim-model/0.2.0';
