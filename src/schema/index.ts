import { builder } from './builder.js';
import './errors.js';
import './user.js';
import './auth.js';
import './sessions.js';
import './profile.js';
import './api-tokens.js';
import './admin.js';
import './email.js';

export const schema = builder.toSchema({ sortSchema: true });
